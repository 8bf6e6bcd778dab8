"""The safetensors file under a checkpoint: its layout, the CRC32C checksums of its data
(whole and tensor by tensor) and of its header, and a reader that checks a header as untrusted
input, against the file's size, before anything is read or allocated, through one open
file. :mod:`.checkpoint` holds what the file means (an xpnet checkpoint's schema)."""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, TypeGuard

import crc32c as _crc32c
import numpy as np

from .._paths import path_kind

__all__ = [
    "CheckpointError",
    "UnverifiedCheckpointWarning",
    "bytes_of",
    "checksum",
    "layout",
    "open_regular",
    "read_exactly",
    "read_header",
    "signed_prefix",
    "tensor",
    "verify",
    "write_all",
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


def checksum(view: memoryview | bytes) -> str:
    """CRC32C of ``view``, as 8 hex digits. CRC32C (Castagnoli), the checksum TensorFlow's
    checkpoints and Google Cloud Storage use, runs on the CPU's CRC instruction where there
    is one (tens of GB/s, so a load stays at the speed of reading the file); it catches
    every error burst up to 32 bits and all but one in 2**32 of the rest."""
    return f"{_crc32c.crc32c(view):08x}"


# The header's own checksum is of the header as written with this in its place.
_BLANK = "0" * 8
_HEADER_KEY = b'\\"crc32c_header\\":\\"'  # as it reads inside the header's JSON


def signed_prefix(
    entries: Mapping[str, Any], metadata: Mapping[str, Any], views: Mapping[str, memoryview]
) -> bytes:
    """The file up to its data: the header's length, then the header, whose metadata
    carries the checksums of the data (``views``, the tensors' bytes in order) as a whole
    and tensor by tensor, and the checksum of these bytes themselves (computed with that
    field blank)."""
    whole = 0
    for view in views.values():
        whole = _crc32c.crc32c(view, whole)
    sums = {name: checksum(view) for name, view in views.items()}
    digest = json.dumps({"crc32c_header": _BLANK, "crc32c_data": f"{whole:08x}",
                         "crc32c_tensors": sums}, separators=(",", ":"))  # fmt: skip
    table = {**metadata, "digest": digest}
    header = json.dumps({**entries, "__metadata__": table}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data start 8-byte aligned, as safetensors'
    blank = len(header).to_bytes(8, "little") + header
    field = _HEADER_KEY + _BLANK.encode()
    if blank.count(field) != 1:  # only a name that spells the field out could repeat it
        raise CheckpointError(
            "a tensor name or metadata value contains the checksum field's text "
            f"{field.decode()!r}; rename it"
        )
    return blank.replace(field, _HEADER_KEY + checksum(blank).encode())


def write_all(stream: IO[bytes], pieces: list[memoryview | bytes]) -> None:
    """Write ``pieces`` in order, gathered into as few system calls as the OS allows
    (many tensors' separate writes cost more than the bytes themselves)."""
    if not hasattr(os, "writev"):
        for piece in pieces:
            stream.write(piece)
        return
    stream.flush()
    fd = stream.fileno()
    pending = [memoryview(piece).cast("B") for piece in pieces if len(piece)]
    first = 0  # pending[first:] is still to write
    while first < len(pending):
        written = os.writev(fd, pending[first : first + _MAX_PIECES])
        if written <= 0:  # a regular file never takes nothing; never spin on one that does
            raise OSError(errno.EIO, "the system wrote none of the bytes asked")
        while first < len(pending) and written >= pending[first].nbytes:
            written -= pending[first].nbytes
            first += 1
        if written:  # a piece went out in part: the rest of it comes next
            pending[first] = pending[first][written:]


def _max_pieces() -> int:
    try:
        return max(1, min(os.sysconf("SC_IOV_MAX"), 1024))
    except (AttributeError, ValueError, OSError):
        return 16


_MAX_PIECES = _max_pieces()


def header_digest(entries: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    """SHA-256 of a header as parsed: the digest of the development versions' checkpoints,
    still verified when one is loaded."""
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
_LITTLE = {code: np.dtype(name).newbyteorder("<") for code, name in _NUMPY_DTYPES.items()}
_ITEMSIZE = {code: dtype.itemsize for code, dtype in _LITTLE.items()}


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
            raise CheckpointError(
                f"{source}: is {path_kind(mode)}, expected a checkpoint file (.safetensors)"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_exactly(stream: IO[bytes], buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream``; the number of bytes read (less at the end)."""
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])  # type: ignore[attr-defined]
        if not count:
            break
        filled += count
    return filled


def read_header(source: Path, stream: IO[bytes], size: int) -> tuple[dict[str, Any], int, bytes]:
    """The safetensors header, checked against the file's size before the data is read
    (a sparse, hostile or bit-flipped file never makes us read or allocate gigabytes).
    Returns the header, the size of the data after it, and the file's bytes up to them."""
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
    spans = _plain_spans(header, data_size)
    if spans is None:  # something is off: the entries one by one, to name it
        spans = [(*_entry_span(source, name, entry, data_size), name)
                 for name, entry in header.items() if name != "__metadata__"]  # fmt: skip
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
    return header, data_size, head + text


def _plain_spans(header: dict[str, Any], data_size: int) -> list[tuple[int, int, str]] | None:
    """Each entry's ``(begin, end, name)`` where all are well formed, checked in one pass
    (a load's header check costs about what its data's checksum does); None otherwise."""
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if type(entry) is not dict:
            return None
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (type(dtype) is str and dtype in _ITEMSIZE and type(shape) is list
                and len(shape) <= 64 and type(offsets) is list and len(offsets) == 2):  # fmt: skip
            return None
        begin, end = offsets
        # type() is int: a bool is no size. Each size within the file before the product,
        # which then stays a small int (and never repeats a list).
        if not (type(begin) is int and type(end) is int and 0 <= begin <= end <= data_size
                and all([type(n) is int and 0 <= n <= data_size for n in shape])
                and end - begin == math.prod(shape) * _ITEMSIZE[dtype]):  # fmt: skip
            return None
        spans.append((begin, end, name))
    return spans


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
    dtype = _LITTLE[entry["dtype"]]
    begin, end = entry["data_offsets"]
    count = (end - begin) // dtype.itemsize
    array = np.frombuffer(data, dtype=dtype, count=count, offset=begin).reshape(entry["shape"])
    return array if sys.byteorder == "little" else array.astype(dtype.newbyteorder("="))


def verify(
    source: Path,
    prefix: bytes,
    entries: Mapping[str, Any],
    metadata: Mapping[str, Any],
    data: np.ndarray,
    *,
    required: bool,
) -> None:
    """Check the checksums written with the file (of the header as written, ``prefix``, and
    of each tensor's bytes in ``data``); for a file of a format before them (not
    ``required``), warn once if it has none."""
    if "digest" not in metadata and required:
        raise CheckpointError(
            f"{source}: its checksums (the metadata field 'digest') are missing, so the file "
            "was damaged or edited after it was saved"
        )
    if "digest" not in metadata:
        warnings.warn(
            f"{source}: written before checkpoints carried a digest, so its contents cannot "
            "be verified (saving it again adds one)",
            UnverifiedCheckpointWarning,
            stacklevel=3,
        )
        return
    damaged = f"{source}: its digest field is damaged, so the file cannot be verified"
    try:
        digest = json.loads(metadata["digest"])
    except (TypeError, ValueError, RecursionError):
        raise CheckpointError(damaged) from None
    if isinstance(digest, dict) and "sha256_data" in digest:
        _verify_sha256(source, entries, metadata, data, digest)
        return
    if not isinstance(digest, dict):
        raise CheckpointError(damaged)
    header_sum, data_sum = digest.get("crc32c_header"), digest.get("crc32c_data")
    sums = digest.get("crc32c_tensors")
    if not (_is_sum(header_sum) and isinstance(sums, dict)):
        raise CheckpointError(damaged)
    if sums.keys() != entries.keys():
        changed = sorted(set(sums) ^ set(entries))
        raise CheckpointError(
            f"{source}: its header names tensors its checksums do not ({changed[0]!r} among "
            f"{len(changed)}); the file was changed after it was saved"
        )
    field = _HEADER_KEY + header_sum.encode() + b'\\"'
    blank = prefix.replace(field, _HEADER_KEY + _BLANK.encode() + b'\\"')
    if prefix.count(field) != 1 or checksum(blank) != header_sum:
        raise CheckpointError(
            f"{source}: its header (names, shapes or metadata) does not match the checksum "
            "written with it; the file was changed after it was saved"
        )
    view = memoryview(data)  # type: ignore[arg-type]
    if checksum(view) == data_sum:  # one pass; the tensors' own only to name what changed
        return
    for name, entry in entries.items():
        begin, end = entry["data_offsets"]
        if checksum(view[begin:end]) != sums[name]:  # computed: always 8 hex digits
            raise CheckpointError(
                f"{source}: the data of tensor {name!r} do not match the checksum written "
                "with them; the file was damaged after it was saved"
            )
    raise CheckpointError(
        f"{source}: its data do not match the checksum written with them (each tensor "
        "matches its own: the checksum itself was changed); the file was damaged after it "
        "was saved"
    )


def _is_sum(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and _SUM.fullmatch(value) is not None


_SUM = re.compile("[0-9a-f]{8}")


def _verify_sha256(
    source: Path,
    entries: Mapping[str, Any],
    metadata: Mapping[str, Any],
    data: np.ndarray,
    digest: Mapping[str, Any],
) -> None:
    """The SHA-256 digests of the development versions' checkpoints (of the data, and of
    the header as parsed)."""
    if header_digest(entries, metadata) != digest.get("sha256_header"):
        raise CheckpointError(
            f"{source}: its header (names, shapes or metadata) does not match the digest "
            "written with it; the file was changed after it was saved"
        )
    if hashlib.sha256(memoryview(data)).hexdigest() != digest.get("sha256_data"):  # type: ignore[arg-type]
        raise CheckpointError(
            f"{source}: its tensor data do not match the digest written with it; the file "
            "was damaged after it was saved"
        )
