"""Checkpoints in safetensors: arrays plus JSON metadata, written atomically.

safetensors holds raw arrays and a string header, so loading a checkpoint never runs code
(unlike pickle). A checkpoint is written to a temporary file in the same folder, flushed
to disk, then renamed over the old one: an interrupted run leaves the previous checkpoint
intact.
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

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "architecture_mismatch",
    "check_meta",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "xpnet-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or not an xpnet checkpoint."""


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
    """Write ``checkpoint`` to ``path`` atomically (safetensors format).

    The bytes go to a temporary file in the same folder, are flushed to disk, and the
    file is renamed over ``path``: at every moment ``path`` holds either the previous
    checkpoint or the new one, never a partial write, even if the process is killed.

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
    from safetensors.numpy import save

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
        # safetensors sorts its entries; keep the state_dict's order (torch's) as well.
        "model_keys": json.dumps(list(checkpoint.model)),
        "optimizer_keys": json.dumps(list(checkpoint.optimizer)),
        "meta": json.dumps(checkpoint.meta),
        "optimizer": json.dumps(scalars),
    }
    payload = save(tensors, metadata=metadata)
    # Locked while written: whoever cleans up abandoned temporaries skips this one.
    with replacing(target, lock=True) as stream:
        stream.write(payload)
    return target


def _ordered(table: dict[str, Any], order: list[str]) -> dict[str, Any]:
    known = [key for key in order if key in table]
    return {key: table[key] for key in [*known, *(k for k in table if k not in known)]}


# Bounds on what a checkpoint's header may declare before anything is read or allocated.
MAX_HEADER_BYTES = 100 * 2**20
# safetensors dtype names NumPy can hold, and the ones xpnet accepts for weights.
_NUMPY_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16",
    "U32": "uint32", "I32": "int32", "U64": "uint64", "I64": "int64",
    "F16": "float16", "F32": "float32", "F64": "float64", "C64": "complex64",
}  # fmt: skip
_FLOAT = {"F16", "F32", "F64"}
_COUNTER = {"I64", "I32"}  # integer buffers and optimizer step counts


def _read_header(source: Path) -> tuple[dict[str, Any], int]:
    """The safetensors header, checked against the file's size before the data is read
    (a sparse or bit-flipped file never makes us read or allocate gigabytes)."""
    size = source.stat().st_size
    with open(source, "rb") as stream:
        head = stream.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{source}: not a readable safetensors file (only {size} bytes)")
        header_size = int.from_bytes(head, "little")
        if not 2 <= header_size <= min(size - 8, MAX_HEADER_BYTES):
            raise CheckpointError(
                f"{source}: not a readable safetensors file (its header claims {header_size} "
                "bytes "
                f"in a file of {size})"
            )
        try:
            header = json.loads(stream.read(header_size))
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(
                f"{source}: not a readable safetensors file (header: {exc})"
            ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: not a readable safetensors file (header not a table)")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("data_offsets"), list):
            raise CheckpointError(f"{source}: tensor {name!r} has no valid entry in the header")
        dtype = entry.get("dtype")
        if dtype not in _NUMPY_DTYPES:
            raise CheckpointError(
                f"{source}: tensor {name!r} has dtype {dtype}, which xpnet cannot load "
                "(NumPy has no such type); convert the checkpoint's tensors to float32"
            )
        offsets = entry["data_offsets"]
        shape = entry.get("shape")
        if (
            len(offsets) != 2
            or not all(isinstance(n, int) and n >= 0 for n in offsets)
            or not isinstance(shape, list)
            or not all(isinstance(n, int) and n >= 0 for n in shape)
            or offsets[1] - offsets[0]
            != int(np.prod(shape, dtype=np.int64)) * np.dtype(_NUMPY_DTYPES[dtype]).itemsize
        ):
            raise CheckpointError(f"{source}: tensor {name!r} has an inconsistent header entry")
        end = max(end, offsets[1])
    if 8 + header_size + end != size:
        raise CheckpointError(
            f"{source}: is truncated or damaged (the header describes {8 + header_size + end} "
            f"bytes, the file has {size})"
        )
    return header, header_size


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


def _check_finite(source: Path, tensors: Mapping[str, np.ndarray]) -> None:
    bad = [
        name
        for name, value in tensors.items()
        if value.dtype.kind == "f" and not np.isfinite(value).all()
    ]
    if bad:
        raise CheckpointError(
            f"{source}: holds NaN or infinite values in {', '.join(bad)}; xpnet never "
            "saves those, so the file is damaged"
        )


def _json_field(
    source: Path, metadata: Mapping[str, Any], key: str, kind: type, default: str
) -> Any:
    text = metadata.get(key, default)
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise CheckpointError(
            f"{source}: metadata field {key!r} is not a JSON {kind.__name__}; the file is "
            "damaged or was not written by xpnet"
        )
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
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
    """One mean and std, or a list of each with one value per channel (up to 4096)."""
    if isinstance(mean, list) and isinstance(std, list):
        return (
            0 < len(mean) <= 4096
            and len(std) == len(mean)
            and all(_is_number(m, -1e30) for m in mean)
            and all(_is_number(s, 1e-30) for s in std)
        )
    return _is_number(mean, -1e30) and _is_number(std, 1e-30)


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
    "in_channels": (lambda v: _is_int(v, 1, 4096), "an integer from 1 to 4096"),
    "num_classes": (lambda v: _is_int(v, 1, 10**6), "an integer from 1 to 1000000"),
    "image_size": (lambda v: _is_int(v, 1, 4096), "an integer from 1 to 4096 (pixels)"),
    "normalisation": (
        lambda v: isinstance(v, list) and len(v) == 2 and _normalisation_ok(v[0], v[1]),
        "[mean, std] (numbers, or lists of one per channel) with a positive std",
    ),
    "source": (lambda v: isinstance(v, str), "a dataset name"),
    "data": (
        lambda v: isinstance(v, dict) and all(isinstance(p, str) for p in v.values()),
        "a table of data paths",
    ),
    "test_size": (lambda v: v is None or _is_number(v), "a size or null"),
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
    "batch_size": (lambda v: _is_int(v, 1, 10**7), "a positive integer"),
    "seed": (lambda v: _is_int(v, 0, 2**63 - 1), "an integer >= 0"),
    "schedule": (lambda v: isinstance(v, str), "a schedule name"),
    "epochs": (lambda v: _is_int(v, 1, 10**9), "a positive integer"),
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
    if "epoch" in meta and "history" in meta and len(meta["history"]) != meta["epoch"]:
        raise CheckpointError(
            f"{source}: metadata says epoch {meta['epoch']} but its history has "
            f"{len(meta['history'])} epochs; the file is damaged"
        )


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

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
        Naming the file, when it is missing, a folder, unreadable, truncated, not
        safetensors, not an xpnet checkpoint, or damaged: a tensor that is not floating
        point (or an integer counter), holds NaN or infinity, or a dtype NumPy lacks
        (BF16, F8). The header is checked against the file's size before anything else
        is read.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    source = Path(path)
    if source.is_dir():
        raise CheckpointError(f"{source}: is a folder, expected a checkpoint file (.safetensors)")
    if not source.is_file():
        raise CheckpointError(f"{source}: checkpoint not found")
    try:
        header, _ = _read_header(source)
        metadata: Mapping[str, Any] = header.get("__metadata__") or {}
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            found = metadata.get("format") if isinstance(metadata, dict) else None
            raise CheckpointError(
                f"{source}: not an xpnet checkpoint (format {found!r}, expected {FORMAT!r})"
            )
        _check_tensors(source, header)
        meta = _json_field(source, metadata, "meta", dict, "{}")
        optimizer: dict[str, Any] = _json_field(source, metadata, "optimizer", dict, "{}")
        keys: list[str] = _json_field(source, metadata, "model_keys", list, "[]")
        optimizer_keys: list[str] = _json_field(source, metadata, "optimizer_keys", list, "[]")
        tensors = load(source.read_bytes())
    except OSError as exc:
        raise CheckpointError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    except SafetensorError as exc:
        raise CheckpointError(f"{source}: not a readable safetensors file ({exc})") from None
    _check_finite(source, tensors)
    check_meta(meta, source)
    model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    optimizer.update(
        {k[len("optimizer/") :]: v for k, v in tensors.items() if k.startswith("optimizer/")}
    )
    model, optimizer = _ordered(model, keys), _ordered(optimizer, optimizer_keys)
    return Checkpoint(model=model, optimizer=optimizer, meta=meta)
