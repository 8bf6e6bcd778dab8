"""The safetensors file under a checkpoint: its layout, the SHA-256 digests of its data
and header (computed beside the file's I/O), and a reader that checks a header as untrusted
input, against the file's size, before anything is read or allocated, through one open
file. :mod:`.checkpoint` holds what the file means (an xpnet checkpoint's schema)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._paths import path_kind

__all__ = [
    "CheckpointError",
    "UnverifiedCheckpointWarning",
    "bytes_of",
    "hash_while",
    "header_digest",
    "layout",
    "open_regular",
    "read_hashing",
    "read_header",
    "tensor",
    "verify",
]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or not an xpnet checkpoint."""


def _little_endian(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        return array.astype(array.dtype.newbyteorder("<"))
    return array


def bytes_of(array: np.ndarray) -> memoryview:
    """The array's bytes, little-endian and C-ordered, without a copy where it is already."""
    flat = np.ascontiguousarray(_little_endian(array)).reshape(-1)
    return memoryview(flat).cast("B")  # type: ignore[arg-type]


def layout(tensors: Mapping[str, np.ndarray]) -> dict[str, Any]:
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


def hash_while(io: Callable[[memoryview], Any], pieces: Iterable[memoryview]) -> str:
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


def header_digest(entries: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    """SHA-256 of the header as parsed (tensor entries and metadata, the digest itself
    left out), so that any change of a name, shape, offset or metadata value shows."""
    table = {k: v for k, v in metadata.items() if k != "digest"}
    text = json.dumps({"tensors": entries, "metadata": table}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# Bounds on what a checkpoint's header may declare before anything is read or allocated.
MAX_HEADER_BYTES = 100 * 2**20
# safetensors dtype names NumPy can hold.
_NUMPY_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16",
    "U32": "uint32", "I32": "int32", "U64": "uint64", "I64": "int64",
    "F16": "float16", "F32": "float32", "F64": "float64", "C64": "complex64",
}  # fmt: skip


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint written before checkpoints carried a digest: it loads, unverified."""


def open_regular(source: Path) -> IO[bytes]:
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


def read_hashing(stream: IO[bytes], buffer: memoryview) -> tuple[int, str]:
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


def read_header(source: Path, stream: IO[bytes], size: int) -> tuple[dict[str, Any], int]:
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


def tensor(data: np.ndarray, entry: Mapping[str, Any]) -> np.ndarray:
    """A tensor of the data, as a view (the data are read once, and not copied again)."""
    dtype = np.dtype(_NUMPY_DTYPES[entry["dtype"]]).newbyteorder("<")
    begin, end = entry["data_offsets"]
    count = (end - begin) // dtype.itemsize
    array = np.frombuffer(data, dtype=dtype, count=count, offset=begin).reshape(entry["shape"])
    return array if sys.byteorder == "little" else array.astype(dtype.newbyteorder("="))


def verify(
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
    if header_digest(entries, metadata) != expected_header:
        raise CheckpointError(
            f"{source}: its header (names, shapes or metadata) does not match the digest "
            "written with it; the file was damaged after it was saved"
        )
    if data_digest != expected_data:
        raise CheckpointError(
            f"{source}: its tensor data do not match the digest written with it; the file "
            "was damaged after it was saved"
        )
