"""Checkpoints in safetensors: arrays plus JSON metadata, written atomically, with checksums.

safetensors holds raw arrays and a string header, so loading a checkpoint never runs code
(unlike pickle). A checkpoint is written to a temporary file in the same folder, flushed
to disk, then renamed over the old one: an interrupted run leaves the previous checkpoint
intact. safetensors has no checksum: xpnet writes a CRC32C checksum of each tensor's bytes
and of the header into the metadata, and verifies them on every load (the file's layout,
checksums and untrusted-header reading are :mod:`._safetensors`). The files stay plain safetensors,
which safetensors' own loaders read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import backends
from .._atomic import replacing
from .._limits import describe, input_size_problem, int_problem
from ._safetensors import (
    CheckpointError,
    UnverifiedCheckpointWarning,
    bytes_of,
    layout,
    open_regular,
    read_exactly,
    read_header,
    signed_prefix,
    tensor,
    verify,
    write_all,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "UnverifiedCheckpointWarning",
    "architecture_mismatch",
    "check_meta",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "xpnet-checkpoint/2"
#: Checkpoints written before checksums (and by the development versions' SHA-256 digests):
#: verified where they carry a digest, else loaded with a warning. A file of FORMAT without
#: its checksums is damaged, never one of these.
EARLIER_FORMATS = ("xpnet-checkpoint/1",)
# The metadata fields of every format: checksums under "digest", the rest JSON.
_METADATA_KEYS = {"format", "model_keys", "optimizer_keys", "meta", "optimizer", "digest"}


@dataclass
class Checkpoint:
    """What a checkpoint holds.

    Attributes
    ----------
    model : dict
        The model's ``state_dict`` as NumPy arrays.
    optimizer : dict
        The optimizer's ``state_dict`` (arrays as NumPy, scalars as Python numbers).
    meta : dict
        JSON-serialisable facts: epoch, model name and shape, training settings, history,
        scheduler and random-generator state.
    """

    model: dict[str, np.ndarray]
    optimizer: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def architecture_mismatch(
    expected: Mapping[str, Any], found: Mapping[str, Any], found_name: str = "checkpoint"
) -> str | None:
    """Say how two state dicts differ, or ``None`` if keys and shapes all agree.

    Parameters
    ----------
    expected : mapping
        The model's ``state_dict`` (arrays of any backend).
    found : mapping
        The other one, e.g. a checkpoint's weights.
    found_name : str, default "checkpoint"
        What to call ``found`` in the message.

    Returns
    -------
    str or None
        Every key whose shape differs (both shapes), every key missing from ``found`` and
        every key ``found`` has in excess (with its shape).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.train import architecture_mismatch
    >>> model = {"0.weight": np.zeros((6, 1, 5, 5)), "0.bias": np.zeros(6)}
    >>> saved = {"0.weight": np.zeros((16, 1, 3, 3)), "1.weight": np.zeros(2)}
    >>> for part in architecture_mismatch(model, saved).split("; "):
    ...     print(part)
    shapes differ: 0.weight (model (6, 1, 5, 5), checkpoint (16, 1, 3, 3))
    missing from the checkpoint: 0.bias (6,)
    not in the model: 1.weight (2,)
    """

    def shape(value: Any) -> tuple[int, ...]:
        return tuple(int(n) for n in getattr(value, "shape", np.shape(value)))

    parts = []
    differ = [
        f"{key} (model {shape(value)}, {found_name} {shape(found[key])})"
        for key, value in expected.items()
        if key in found and shape(found[key]) != shape(value)
    ]
    missing = [f"{key} {shape(value)}" for key, value in expected.items() if key not in found]
    extra = [f"{key} {shape(value)}" for key, value in found.items() if key not in expected]
    if differ:
        parts.append("shapes differ: " + ", ".join(differ))
    if missing:
        parts.append(f"missing from the {found_name}: " + ", ".join(missing))
    if extra:
        parts.append("not in the model: " + ", ".join(extra))
    return "; ".join(parts) or None


def _host(value: Any) -> np.ndarray:
    # np.asarray(order="C"), not ascontiguousarray: that one turns 0-d arrays into 1-d.
    return np.asarray(backends.to_numpy(value), order="C")


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (safetensors format), with checksums.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the
    file is renamed over ``path``: at every moment ``path`` holds either the previous
    checkpoint or the new one, never a partial write, even if the process is killed.
    CRC32C checksums of each tensor's bytes and of the header, computed while writing, go
    into the header's metadata; :func:`load_checkpoint` verifies them.

    Parameters
    ----------
    path : path-like
        Where to write (conventionally ``*.safetensors``); parent folders are created.
    checkpoint : Checkpoint
        Arrays of any backend (copied to the host) and JSON-serialisable metadata.

    Returns
    -------
    Path
        The path written.
    """
    target = Path(path)
    tensors: dict[str, np.ndarray] = {}
    for key, value in checkpoint.model.items():
        tensors[f"model/{key}"] = _host(value)
    scalars: dict[str, Any] = {}
    for key, value in checkpoint.optimizer.items():
        if isinstance(value, bool | int | float | str) or value is None:
            scalars[key] = value
        else:
            tensors[f"optimizer/{key}"] = _host(value)
    metadata = {
        "format": FORMAT,
        # Keep the state_dict's order (torch's) for readers that sort the entries.
        "model_keys": json.dumps(list(checkpoint.model)),
        "optimizer_keys": json.dumps(list(checkpoint.optimizer)),
        "meta": json.dumps(checkpoint.meta),
        "optimizer": json.dumps(scalars),
    }
    entries = layout(tensors)
    views = {name: bytes_of(array) for name, array in tensors.items()}
    prefix = signed_prefix(entries, metadata, views)
    # Locked while written: whoever cleans up abandoned temporaries skips this one.
    with replacing(target, lock=True) as stream:
        write_all(stream, [prefix, *views.values()])
    return target


def _ordered(table: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """``table`` in ``order``, then any keys ``order`` lacks (an update keeps places)."""
    ordered = {key: table[key] for key in order if key in table}
    ordered.update(table)
    return ordered


# The safetensors dtypes xpnet accepts for weights, and for counters.
_FLOAT = {"F16", "F32", "F64"}
_COUNTER = {"I64", "I32"}  # integer buffers and optimizer step counts


def _check_tensors(source: Path, header: Mapping[str, Any]) -> None:
    """Weights are floating point, counters integers: anything else (bool, uint8,
    complex...) is a damaged or foreign checkpoint, never cast silently."""
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry["dtype"]
        counter = name.endswith((".step", "num_batches_tracked"))
        if dtype not in (_COUNTER if counter else _FLOAT):
            expected = "an integer counter" if counter else "floating point (F16, F32, F64)"
            raise CheckpointError(
                f"{source}: tensor {name!r} is {dtype}, expected {expected}; the file is "
                "damaged or was not written by xpnet"
            )


def _finite_tensors(
    source: Path, data: np.ndarray, entries: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Every tensor as a view of the data, none of the floating ones holding NaN or infinity.

    Neighbours of one dtype make a run: one view and one finiteness pass over its bytes,
    not a call per tensor (a file laid out in another order only makes more runs); tensor
    by tensor only to name where a run failed."""
    runs: list[list[Any]] = []  # [dtype, begin, end, [(name, entry), ...]]
    for name, entry in entries.items():  # in the order written: neighbours join a run
        begin, end = entry["data_offsets"]
        if runs and runs[-1][0] == entry["dtype"] and runs[-1][2] == begin:
            runs[-1][2] = end
            runs[-1][3].append((name, entry))
        else:
            runs.append([entry["dtype"], begin, end, [(name, entry)]])
    tensors: dict[str, np.ndarray] = {}
    bad: list[str] = []
    for dtype, begin, end, members in runs:
        run = tensor(data, {"dtype": dtype, "shape": [-1], "data_offsets": [begin, end]})
        size = run.dtype.itemsize
        for name, entry in members:
            first, last = entry["data_offsets"]
            tensors[name] = run[(first - begin) // size : (last - begin) // size].reshape(
                entry["shape"]
            )
        if dtype in _FLOAT and not np.isfinite(run).all():
            bad += [name for name, _ in members if not np.isfinite(tensors[name]).all()]
    if bad:
        raise CheckpointError(
            f"{source}: holds NaN or infinite values in {', '.join(bad)}; xpnet never "
            "saves those, so the file is damaged"
        )
    return tensors


class _RepeatedKey(ValueError):
    pass


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's table, refused if it gives a key twice."""
    table = dict(pairs)
    if len(table) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return table


# One decoder for every field (json.loads with a hook builds a new one per call).
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_once)


def _json_field(
    source: Path, metadata: Mapping[str, Any], key: str, kind: type, default: str
) -> Any:
    text = metadata.get(key, default)
    try:
        value = _STRICT_JSON.decode(text) if isinstance(text, str) else None
    except _RepeatedKey as exc:  # JSON keeps the last; which one was meant is unknowable
        raise CheckpointError(
            f"{source}: metadata field {key!r} gives {exc.args[0]!r} twice; the file is "
            "damaged or was edited"
        ) from None
    except (ValueError, RecursionError):  # not JSON, or nested past any real metadata
        value = None
    if not isinstance(value, kind):
        raise CheckpointError(
            f"{source}: metadata field {key!r} is not a JSON {kind.__name__}; the file is "
            "damaged or was not written by xpnet"
        )
    if isinstance(value, list) and not set(map(type, value)) <= {str}:
        raise CheckpointError(f"{source}: metadata field {key!r} must list tensor names")
    return value


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any, low: float = 0.0) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and np.isfinite(value)
        and value >= low
    )


def _normalisation_ok(mean: Any, std: Any) -> bool:
    """One mean and std, or a list of each with one value per channel (up to 4096), within
    what any pixels give: |mean| <= 1e6 and std in [1e-6, 1e6], so that normalised inputs
    stay finite in float32 and float64 (1e30 and 1e-30 would turn every input into inf)."""

    def pair(m: Any, s: Any) -> bool:
        return _is_number(m, -1e6) and m <= 1e6 and _is_number(s, 1e-6) and s <= 1e6

    if isinstance(mean, list) and isinstance(std, list):
        return 0 < len(mean) <= 4096 and len(std) == len(mean) and all(map(pair, mean, std))
    return pair(mean, std)


# What each field of a checkpoint's metadata must be, when present (a check and what to say).
# Sizes are bounded before anything is built from them: a model is never allocated from an
# unchecked number (image_size=100000 would ask for terabytes).
_META_FIELDS: dict[str, tuple[Any, str]] = {
    "epoch": (lambda v: _is_int(v, 1, 10**9), "a positive integer"),
    "history": (
        lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v),
        "a list of per-epoch records",
    ),
    "model": (lambda v: isinstance(v, str), "a model name"),
    "in_channels": (lambda v: int_problem("in_channels", v) is None, describe("in_channels")),
    "num_classes": (lambda v: int_problem("num_classes", v) is None, describe("num_classes")),
    "image_size": (lambda v: int_problem("image_size", v) is None, describe("image_size")),
    "normalisation": (
        lambda v: isinstance(v, list) and len(v) == 2 and _normalisation_ok(v[0], v[1]),
        "[mean, std] (numbers, or lists of one per channel) with |mean| <= 1e6 and std "
        "from 1e-6 to 1e6",
    ),
    "source": (lambda v: isinstance(v, str), "a dataset name"),
    "data": (
        lambda v: isinstance(v, dict) and all(isinstance(p, str) for p in v.values()),
        "a table of data paths",
    ),
    "test_size": (lambda v: v is None or _is_int(v, 1, 10**9), "a number of images or null"),
    "settings": (lambda v: isinstance(v, dict), "a table of training settings"),
    "optimizer_class": (lambda v: isinstance(v, str), "an optimizer class name"),
    "scheduler": (lambda v: v is None or isinstance(v, dict), "a scheduler state or null"),
    "rng": (lambda v: isinstance(v, dict), "a table of random-generator states"),
}
_SETTINGS_FIELDS: dict[str, tuple[Any, str]] = {
    "model": (lambda v: isinstance(v, str), "a model name"),
    "optimizer": (lambda v: isinstance(v, str), "an optimizer name"),
    "lr": (_is_number, "a finite number >= 0"),
    "momentum": (_is_number, "a finite number >= 0"),
    "weight_decay": (_is_number, "a finite number >= 0"),
    "batch_size": (lambda v: int_problem("batch_size", v) is None, describe("batch_size")),
    "seed": (lambda v: int_problem("seed", v) is None, describe("seed")),
    "schedule": (lambda v: isinstance(v, str), "a schedule name"),
    "epochs": (lambda v: int_problem("epochs", v) is None, describe("epochs")),
}


def check_meta(meta: Mapping[str, Any], source: str | os.PathLike[str]) -> None:
    """Validate a checkpoint's metadata against its schema before anything acts on it.

    Raises
    ------
    CheckpointError
        Naming the file and the field, what was expected and what was found.
    """

    def check(table: Mapping[str, Any], fields: dict[str, tuple[Any, str]], where: str) -> None:
        for key, (valid, expected) in fields.items():
            if key in table and not (valid(table[key]) or (where and table[key] is None)):
                shown = json.dumps(table[key])
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise CheckpointError(
                    f"{source}: metadata field {where}{key} should be {expected}, found {shown}"
                )

    check(meta, _META_FIELDS, "")
    check(meta.get("settings", {}), _SETTINGS_FIELDS, "settings.")
    if "in_channels" in meta and "image_size" in meta:
        problem = input_size_problem(meta["in_channels"], meta["image_size"])
        if problem is not None:
            raise CheckpointError(f"{source}: metadata: {problem}")
    if "epoch" in meta and "history" in meta and len(meta["history"]) != meta["epoch"]:
        raise CheckpointError(
            f"{source}: metadata says epoch {meta['epoch']} but its history has "
            f"{len(meta['history'])} epochs; the file is damaged"
        )


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    The file is opened once and read through that one handle (a save landing meanwhile
    replaces the file under another name; this read keeps seeing one whole file). The
    checksums written with it are verified.

    Parameters
    ----------
    path : path-like
        A ``.safetensors`` file written by xpnet.

    Returns
    -------
    Checkpoint
        Arrays as NumPy arrays on the host.

    Raises
    ------
    CheckpointError
        Naming the file, when it is missing, not a regular file (a folder, a FIFO, a
        device), unreadable, truncated, not safetensors, not an xpnet checkpoint, or
        damaged: its data or header do not match the checksums written with it, a tensor is
        not floating point (or an integer counter), holds NaN or infinity, or has a dtype
        NumPy lacks (BF16, F8). The header is checked against the file's size before
        anything else is read.

    Warns
    -----
    UnverifiedCheckpointWarning
        For a checkpoint written before checkpoints carried a digest (it loads).
    """
    source = Path(path)
    with open_regular(source) as stream:
        try:
            size = os.fstat(stream.fileno()).st_size
            header, data_size, prefix = read_header(source, stream, size)
            metadata: Mapping[str, Any] = header.get("__metadata__") or {}
            if not isinstance(metadata, dict) or metadata.get("format") not in (
                FORMAT,
                *EARLIER_FORMATS,
            ):
                found = metadata.get("format") if isinstance(metadata, dict) else None
                raise CheckpointError(
                    f"{source}: not an xpnet checkpoint (format {found!r}, expected {FORMAT!r})"
                )
            data = np.empty(data_size, dtype=np.uint8)  # uninitialised: no zero-filling pass
            filled = read_exactly(stream, memoryview(data))  # type: ignore[arg-type]
            if filled != data_size:
                raise CheckpointError(f"{source}: is truncated (it shrank while being read)")
        except OSError as exc:
            raise CheckpointError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    unknown = sorted(set(metadata) - _METADATA_KEYS)
    if unknown:  # a damaged key (a "digest" that lost a bit) is damage, never ignored
        raise CheckpointError(
            f"{source}: metadata field {unknown[0]!r} is not one xpnet writes (it writes "
            f"{', '.join(sorted(_METADATA_KEYS))}); the file was damaged or edited after "
            "it was saved"
        )
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    verify(source, prefix, entries, metadata, data, required=metadata["format"] == FORMAT)
    _check_tensors(source, header)
    meta = _json_field(source, metadata, "meta", dict, "{}")
    optimizer: dict[str, Any] = _json_field(source, metadata, "optimizer", dict, "{}")
    keys: list[str] = _json_field(source, metadata, "model_keys", list, "[]")
    optimizer_keys: list[str] = _json_field(source, metadata, "optimizer_keys", list, "[]")
    tensors = _finite_tensors(source, data, entries)
    check_meta(meta, source)
    model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    optimizer.update(
        {k[len("optimizer/") :]: v for k, v in tensors.items() if k.startswith("optimizer/")}
    )
    model, optimizer = _ordered(model, keys), _ordered(optimizer, optimizer_keys)
    return Checkpoint(model=model, optimizer=optimizer, meta=meta)
