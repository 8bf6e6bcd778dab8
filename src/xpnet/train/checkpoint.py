"""Checkpoints in safetensors: arrays plus JSON metadata, written atomically, with digests.

safetensors holds raw arrays and a string header, so loading a checkpoint never runs code
(unlike pickle). A checkpoint is written to a temporary file in the same folder, flushed
to disk, then renamed over the old one: an interrupted run leaves the previous checkpoint
intact. safetensors has no checksum: xpnet writes SHA-256 digests of the data and of the
header into the metadata, and verifies them on every load. The files stay plain
safetensors, which safetensors' own loaders read.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import backends
from .._atomic import replacing
from .._limits import describe, input_size_problem, int_problem
from .._paths import path_kind

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "UnverifiedCheckpointWarning",
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
    """Write ``checkpoint`` to ``path`` atomically (safetensors format), with a digest.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the
    file is renamed over ``path``: at every moment ``path`` holds either the previous
    checkpoint or the new one, never a partial write, even if the process is killed.
    SHA-256 digests of the tensor data and of the header, computed while writing, go into
    the header's metadata; :func:`load_checkpoint` verifies both.

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
    entries = _layout(tensors)
    header_digest = _header_digest(entries, metadata)

    def prefix(data_digest: str) -> bytes:
        table = {**metadata, "digest": json.dumps(
            {"sha256_data": data_digest, "sha256_header": header_digest})}  # fmt: skip
        header = json.dumps({**entries, "__metadata__": table}, separators=(",", ":")).encode()
        header += b" " * (-len(header) % 8)  # the data start 8-byte aligned, as safetensors'
        return len(header).to_bytes(8, "little") + header

    # Locked while written: whoever cleans up abandoned temporaries skips this one. The
    # header goes first with a placeholder digest of the same length, the data are hashed
    # while they are written, and the header is written again with the digest.
    with replacing(target, lock=True) as stream:
        stream.write(prefix("0" * 64))
        digest = _hash_while(stream.write, [_bytes_of(array) for array in tensors.values()])
        stream.seek(0)
        stream.write(prefix(digest))
    return target


def _little_endian(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        return array.astype(array.dtype.newbyteorder("<"))
    return array


def _bytes_of(array: np.ndarray) -> memoryview:
    """The array's bytes, little-endian and C-ordered, without a copy where it is already."""
    flat = np.ascontiguousarray(_little_endian(array)).reshape(-1)
    return memoryview(flat).cast("B")  # type: ignore[arg-type]


def _layout(tensors: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Safetensors header entries for ``tensors``, laid out one after another in order."""
    codes = {np.dtype(name): code for code, name in _NUMPY_DTYPES.items()}
    entries: dict[str, Any] = {}
    offset = 0
    for name, array in tensors.items():
        code = codes.get(array.dtype.newbyteorder("="))
        if code is None:
            raise CheckpointError(f"tensor {name!r}: dtype {array.dtype} cannot be saved")
        entries[name] = {
            "dtype": code,
            "shape": [int(n) for n in array.shape],
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    return entries


#: Bytes hashed per step, and the size from which the hashing runs beside the reads and
#: writes on a thread of its own (hashlib and file I/O both release the GIL).
_CHUNK = 4 * 2**20
_hashing: list[Any] = []


def _hash_while(io: Callable[[memoryview], Any], pieces: Iterable[memoryview]) -> str:
    """SHA-256 of ``pieces``, each passed to ``io`` (a write) in order, in pieces of at most
    ``_CHUNK`` bytes."""
    chunks = [piece[i : i + _CHUNK] for piece in pieces for i in range(0, piece.nbytes, _CHUNK)]

    def writing() -> Iterator[memoryview]:
        for chunk in chunks:
            io(chunk)
            yield chunk

    return _hash_pieces(writing(), overlap=sum(c.nbytes for c in chunks) >= 2 * _CHUNK)


def _hash_pieces(pieces: Iterator[memoryview], overlap: bool) -> str:
    """SHA-256 of the pieces in order. With ``overlap``, each piece is hashed on the
    digest thread while the iterator produces the next (its read or write)."""
    digest = hashlib.sha256()
    if not overlap:
        for piece in pieces:
            digest.update(piece)
        return digest.hexdigest()
    pool = _hash_pool()
    pending = None
    for piece in pieces:
        if pending is not None:
            pending.result()
        pending = pool.submit(digest.update, piece)
    if pending is not None:
        pending.result()
    return digest.hexdigest()


def _hash_pool() -> Any:
    """One worker thread, made on first use, that hashes beside the file I/O."""
    if not _hashing:
        from concurrent.futures import ThreadPoolExecutor

        _hashing.append(ThreadPoolExecutor(1, thread_name_prefix="xpnet-digest"))
    return _hashing[0]


def _header_digest(entries: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    """SHA-256 of the header as parsed (tensor entries and metadata, the digest itself
    left out), so that any change of a name, shape, offset or metadata value shows."""
    table = {k: v for k, v in metadata.items() if k != "digest"}
    text = json.dumps({"tensors": entries, "metadata": table}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


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


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint written before checkpoints carried a digest: it loads, unverified."""


def _open_regular(source: Path) -> IO[bytes]:
    """``source`` opened for reading once, refused unless it is a regular file (a FIFO is
    opened without waiting for a writer, and refused)."""
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{source}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(
            f"{source}: is a folder, expected a checkpoint file (.safetensors)"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = path_kind(mode)
            if stat.S_ISDIR(mode):
                kind += ", expected a checkpoint file (.safetensors)"
            raise CheckpointError(f"{source}: is {kind}, expected a checkpoint file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_exactly(stream: IO[bytes], buffer: bytearray | memoryview) -> int:
    """Fill ``buffer`` from ``stream``; the number of bytes read (less at the end)."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled


def _read_hashing(stream: IO[bytes], buffer: memoryview) -> tuple[int, str]:
    """Fill ``buffer`` from ``stream``, hashing what was read (beside the next read, for
    large files); the number of bytes read and their SHA-256."""
    chunks = [buffer[i : i + _CHUNK] for i in range(0, buffer.nbytes, _CHUNK)]
    filled = 0

    def reading() -> Iterator[memoryview]:
        nonlocal filled
        for chunk in chunks:
            count = _read_exactly(stream, chunk)
            filled += count
            yield chunk[:count]
            if count < chunk.nbytes:
                return

    digest = _hash_pieces(reading(), overlap=buffer.nbytes >= 2 * _CHUNK)
    return filled, digest


def _read_header(source: Path, stream: IO[bytes], size: int) -> tuple[dict[str, Any], int]:
    """The safetensors header, checked against the file's size before the data is read
    (a sparse, hostile or bit-flipped file never makes us read or allocate gigabytes).
    Returns the header and the size of the data after it."""
    head = stream.read(8)
    if len(head) < 8:
        raise CheckpointError(f"{source}: not a readable safetensors file (only {size} bytes)")
    header_size = int.from_bytes(head, "little")
    if not 2 <= header_size <= min(size - 8, MAX_HEADER_BYTES):
        raise CheckpointError(
            f"{source}: not a readable safetensors file (its header claims {header_size} "
            f"bytes in a file of {size})"
        )
    text = stream.read(header_size)
    try:
        header = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{source}: not a readable safetensors file (header: {exc})"
        ) from None
    except RecursionError:
        raise CheckpointError(
            f"{source}: not a readable safetensors file (its header nests too deeply)"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: not a readable safetensors file (header not a table)")
    data_size = size - 8 - header_size
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        spans.append((*_entry_span(source, name, entry, data_size), name))
    # The tensors tile the data exactly, one after another (safetensors' own rule).
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            raise CheckpointError(
                f"{source}: tensor {name!r} starts at byte {begin} of the data, expected {end}"
                "; the file is damaged"
            )
        end = stop
    if end != data_size:
        raise CheckpointError(
            f"{source}: is truncated or damaged (the header describes {8 + header_size + end} "
            f"bytes, the file has {size})"
        )
    return header, data_size


def _entry_span(source: Path, name: str, entry: Any, data_size: int) -> tuple[int, int]:
    """A tensor entry's ``(begin, end)`` in the data, after checking its dtype, shape and
    offsets as plain JSON values within the file's size (a shape of 2**70 included)."""
    where = f"{source}: tensor {name!r}"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where} has no valid entry in the header")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str):
        raise CheckpointError(f"{where}: its dtype should be a name such as F32, found {dtype!r}")
    if dtype not in _NUMPY_DTYPES:
        raise CheckpointError(
            f"{where} has dtype {dtype}, which xpnet cannot load (NumPy has no such type); "
            "convert the checkpoint's tensors to float32"
        )

    def position(n: Any) -> bool:
        return isinstance(n, int) and not isinstance(n, bool) and n >= 0

    if not isinstance(shape, list) or len(shape) > 64 or not all(map(position, shape)):
        raise CheckpointError(f"{where}: its shape should be a list of sizes, found {shape!r}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(position, offsets)):
        raise CheckpointError(
            f"{where}: its data_offsets should be two byte positions, found {offsets!r}"
        )
    if max(offsets) > data_size:
        raise CheckpointError(
            f"{where} ends at byte {max(offsets)} of the data, but the file holds "
            f"{data_size}: it is truncated or damaged"
        )
    count = 1
    for n in shape:  # Python ints: no overflow; stop as soon as it passes the data's size
        count *= n
        if count > data_size:
            raise CheckpointError(
                f"{where}: its shape {shape} holds more values than the file has bytes"
            )
    begin, end = offsets
    if end - begin != count * np.dtype(_NUMPY_DTYPES[dtype]).itemsize:
        raise CheckpointError(f"{where} has an inconsistent header entry")
    return begin, end


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
    except (ValueError, RecursionError):  # not JSON, or nested past any real metadata
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
    "in_channels": (lambda v: int_problem("in_channels", v) is None, describe("in_channels")),
    "num_classes": (lambda v: int_problem("num_classes", v) is None, describe("num_classes")),
    "image_size": (lambda v: int_problem("image_size", v) is None, describe("image_size")),
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
    digests written with it are verified.

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
        damaged: its data or header do not match the digests written with it, a tensor is
        not floating point (or an integer counter), holds NaN or infinity, or has a dtype
        NumPy lacks (BF16, F8). The header is checked against the file's size before
        anything else is read.

    Warns
    -----
    UnverifiedCheckpointWarning
        For a checkpoint written before checkpoints carried a digest (it loads).
    """
    source = Path(path)
    with _open_regular(source) as stream:
        try:
            size = os.fstat(stream.fileno()).st_size
            header, data_size = _read_header(source, stream, size)
            metadata: Mapping[str, Any] = header.get("__metadata__") or {}
            if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
                found = metadata.get("format") if isinstance(metadata, dict) else None
                raise CheckpointError(
                    f"{source}: not an xpnet checkpoint (format {found!r}, expected {FORMAT!r})"
                )
            # Uninitialised (no zero-filling pass), filled and hashed in one go.
            data = np.empty(data_size, dtype=np.uint8)
            filled, data_digest = _read_hashing(stream, memoryview(data))  # type: ignore[arg-type]
            if filled != data_size:
                raise CheckpointError(f"{source}: is truncated (it shrank while being read)")
        except OSError as exc:
            raise CheckpointError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    _verify(source, entries, metadata, data_digest)
    _check_tensors(source, header)
    meta = _json_field(source, metadata, "meta", dict, "{}")
    optimizer: dict[str, Any] = _json_field(source, metadata, "optimizer", dict, "{}")
    keys: list[str] = _json_field(source, metadata, "model_keys", list, "[]")
    optimizer_keys: list[str] = _json_field(source, metadata, "optimizer_keys", list, "[]")
    tensors = {name: _tensor(data, entry) for name, entry in entries.items()}
    _check_finite(source, tensors)
    check_meta(meta, source)
    model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    optimizer.update(
        {k[len("optimizer/") :]: v for k, v in tensors.items() if k.startswith("optimizer/")}
    )
    model, optimizer = _ordered(model, keys), _ordered(optimizer, optimizer_keys)
    return Checkpoint(model=model, optimizer=optimizer, meta=meta)


def _tensor(data: np.ndarray, entry: Mapping[str, Any]) -> np.ndarray:
    """A tensor of the data, as a view (the data are read once, and not copied again)."""
    dtype = np.dtype(_NUMPY_DTYPES[entry["dtype"]]).newbyteorder("<")
    begin, end = entry["data_offsets"]
    count = (end - begin) // dtype.itemsize
    array = np.frombuffer(data, dtype=dtype, count=count, offset=begin).reshape(entry["shape"])
    return array if sys.byteorder == "little" else array.astype(dtype.newbyteorder("="))


def _verify(
    source: Path, entries: Mapping[str, Any], metadata: Mapping[str, Any], data_digest: str
) -> None:
    """Check the digests written with the file; warn once for a file written without."""
    if "digest" not in metadata:
        warnings.warn(
            f"{source}: written before checkpoints carried a digest, so its contents cannot "
            "be verified (saving it again adds one)",
            UnverifiedCheckpointWarning,
            stacklevel=3,
        )
        return
    try:
        digest = json.loads(metadata["digest"])
        expected_data, expected_header = digest["sha256_data"], digest["sha256_header"]
    except (TypeError, ValueError, KeyError):
        raise CheckpointError(
            f"{source}: its digest field is damaged, so the file cannot be verified"
        ) from None
    if _header_digest(entries, metadata) != expected_header:
        raise CheckpointError(
            f"{source}: its header (names, shapes or metadata) does not match the digest "
            "written with it; the file was damaged after it was saved"
        )
    if data_digest != expected_data:
        raise CheckpointError(
            f"{source}: its tensor data do not match the digest written with it; the file "
            "was damaged after it was saved"
        )
