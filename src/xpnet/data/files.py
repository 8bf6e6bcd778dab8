"""Reading datasets from files: IDX (MNIST, Fashion-MNIST, KMNIST) and ``.npz``.

Everything here runs on the host and returns NumPy arrays; :class:`xpnet.data.DataLoader`
moves batches to the active backend.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._limits import INT_BOUNDS, int_problem
from .._numbers import integer
from .._paths import file_problem, kind_of

__all__ = [
    "MNIST_MD5",
    "Dataset",
    "DatasetError",
    "load_idx",
    "load_images",
    "load_images_labels",
    "load_mnist",
    "load_npz",
    "md5sum",
    "split_last",
]

# The IDX type codes (third byte of the magic number).
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

#: MD5 of the official MNIST distribution files (gzip).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


class DatasetError(ValueError):
    """A dataset file is missing, truncated, malformed or fails its checksum."""


@dataclass(frozen=True)
class Dataset:
    """Images and labels held on the host.

    Attributes
    ----------
    images : numpy.ndarray
        ``(N, C, H, W)``; uint8 (0-255) or float.
    labels : numpy.ndarray
        ``(N,)`` int64 class indices.
    num_classes : int
        Number of classes.
    name : str
        Where it came from, for messages.
    first_index : int
        The position of the first example in the file it came from (a split's test set
        starts past the training examples), so that reports can name examples as the
        file numbers them.
    classes : tuple of str
        The name of each class, in label order, where the source names them (image
        folders, CIFAR-10); empty otherwise.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str = "dataset"
    first_index: int = 0
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field_name in ("images", "labels"):
            value = getattr(self, field_name)
            if not isinstance(value, np.ndarray):
                raise DatasetError(
                    f"{self.name}: {field_name} must be a NumPy array, got {type(value).__name__}"
                )
        if self.images.dtype != np.uint8 and self.images.dtype.kind != "f":
            raise DatasetError(
                f"{self.name}: images must be uint8 (0-255) or floating point, got "
                f"{self.images.dtype}"
            )
        if self.labels.dtype.kind not in "iu":
            raise DatasetError(
                f"{self.name}: labels must be integer class indices, got {self.labels.dtype}"
            )
        if integer(self.num_classes) is None or self.num_classes < 0:
            raise DatasetError(
                f"{self.name}: num_classes must be a whole number, got {self.num_classes!r}"
            )
        if self.images.ndim != 4:
            raise DatasetError(
                f"{self.name}: images must be (N, C, H, W), got shape {self.images.shape}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise DatasetError(
                f"{self.name}: {self.images.shape[0]} images but labels of shape "
                f"{self.labels.shape}"
            )
        if 0 in self.images.shape[2:]:
            raise DatasetError(
                f"{self.name}: images are {self.images.shape[2]}x{self.images.shape[3]}; "
                "expected at least 1x1"
            )
        if integer(self.first_index) is None or self.first_index < 0:
            raise DatasetError(
                f"{self.name}: first_index must be a whole number >= 0, got {self.first_index!r}"
            )
        if self.classes and len(self.classes) != self.num_classes:
            raise DatasetError(
                f"{self.name}: {len(self.classes)} class names for {self.num_classes} classes"
            )
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
            raise DatasetError(
                f"{self.name}: labels must lie in [0, {self.num_classes}), got values from "
                f"{self.labels.min()} to {self.labels.max()}"
            )
        # One pass, as for files: a NaN pixel would poison every step it is in.
        if self.images.dtype.kind == "f" and not np.isfinite(self.images).all():
            raise DatasetError(f"{self.name}: images hold NaN or infinite pixel values")

    def __len__(self) -> int:
        return int(self.images.shape[0])


def md5sum(path: str | os.PathLike[str]) -> str:
    """MD5 hex digest of a file."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open(path: Path) -> Any:
    problem = file_problem(path)
    if problem is not None:
        raise DatasetError(f"{path}: {problem}")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_up_to(stream: Any, count: int) -> bytes:
    """Up to ``count`` bytes of ``stream``, read in blocks: a header that declares more than
    the file holds costs no allocation beyond what is there."""
    blocks, have = [], 0
    while have < count:
        block = stream.read(min(count - have, 1 << 24))
        if not block:
            break
        blocks.append(block)
        have += len(block)
    return b"".join(blocks)


def load_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed).

    The header's dimensions bound the read: the data is read (or decompressed) only up to
    what they declare, and one byte more shows a file longer than its header says, so a
    hostile file never makes xpnet read or allocate more than its header admits.

    Parameters
    ----------
    path : path-like
        ``*-idx3-ubyte`` / ``*-idx1-ubyte`` files, optionally ending in ``.gz``.
    expected_magic : int, optional
        E.g. 2051 for image files and 2049 for label files.

    Returns
    -------
    numpy.ndarray
        The array with the dimensions the header declares.

    Raises
    ------
    DatasetError
        Naming the file, when it is missing, a folder, has a wrong or unknown magic number,
        is truncated, longer than its header declares, or a damaged gzip stream. (IDX
        carries no checksum: a flipped bit in the pixels cannot be noticed; MNIST's own
        files are checked against their published MD5 sums by :func:`load_mnist`.)
    """
    file = Path(path)
    try:
        with _open(file) as stream:
            head = stream.read(4)
            if len(head) < 4:
                raise DatasetError(f"{file}: truncated: {len(head)} bytes, no IDX header")
            magic = int.from_bytes(head, "big")
            if expected_magic is not None and magic != expected_magic:
                raise DatasetError(f"{file}: wrong magic number {magic}, expected {expected_magic}")
            if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
                raise DatasetError(f"{file}: not an IDX file (magic number {magic})")
            ndim = head[3]
            dims = _read_up_to(stream, 4 * ndim)
            if len(dims) < 4 * ndim:
                raise DatasetError(f"{file}: truncated inside the header")
            shape = tuple(int.from_bytes(dims[4 * i : 4 + 4 * i], "big") for i in range(ndim))
            dtype = np.dtype(_IDX_DTYPES[head[2]])
            header = 4 + 4 * ndim
            expected = header + math.prod(shape) * dtype.itemsize  # Python ints: no wrapping
            data = _read_up_to(stream, expected - header)
            if header + len(data) < expected:
                raise DatasetError(
                    f"{file}: truncated: {header + len(data)} bytes, header {shape} needs "
                    f"{expected} bytes"
                )
            if stream.read(1):
                raise DatasetError(
                    f"{file}: longer than its header declares: header {shape} needs "
                    f"{expected} bytes"
                )
    except (OSError, EOFError, zlib.error) as exc:
        # A damaged gzip stream raises any of these, depending on where it breaks.
        raise DatasetError(f"{file}: cannot be read ({exc})") from None
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def load_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX image file (magic number 2051) as uint8 ``(N, 1, H, W)``."""
    return load_idx(path, expected_magic=2051)[:, None]


def load_images_labels(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str],
    num_classes: int | None = None,
) -> Dataset:
    """Read an IDX image file and its IDX label file into a :class:`Dataset`.

    Parameters
    ----------
    images_path, labels_path : path-like
        ``*-idx3-ubyte[.gz]`` (magic 2051) and ``*-idx1-ubyte[.gz]`` (magic 2049).
    num_classes : int, optional
        Labels must lie in ``[0, num_classes)``; by default the larger of 10 and the
        largest label plus one.

    Raises
    ------
    DatasetError
        Naming the file at fault: missing, malformed, counts that differ, or labels out
        of range.
    """
    images = load_images(images_path)
    labels = load_idx(labels_path, expected_magic=2049).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{images_path} has {images.shape[0]} images but {labels_path} has "
            f"{labels.shape[0]} labels"
        )
    if num_classes is None:
        num_classes = max(int(labels.max()) + 1 if labels.size else 0, 10)
        _check_label_gaps(labels, num_classes, Path(labels_path))
    return Dataset(images, labels, num_classes, name=str(labels_path))


def _check_label_gaps(labels: np.ndarray, num_classes: int, path: Path) -> None:
    """Classes inferred from the largest label: refuse when that invents classes with no
    example beyond the first 10 (a label of 200 among digits is damage, not 191 classes)."""
    if num_classes <= 10 or labels.size == 0:
        return
    present = np.unique(labels)
    absent = num_classes - present.size
    # A small sample may miss a few classes; more empty classes than present ones (and
    # over 10) is a damaged file.
    if absent > max(10, present.size):
        highest = ", ".join(str(int(v)) for v in present[-3:])
        raise DatasetError(
            f"{path}: labels up to {int(present[-1])} (highest: {highest}) would make "
            f"{num_classes} classes, {absent} of them without any example; the labels look "
            "damaged (pass num_classes, --num-classes, if they are right)"
        )


def split_last(dataset: Dataset, test_size: int) -> tuple[Dataset, Dataset]:
    """Hold out the last ``test_size`` examples: ``(first N - test_size, last test_size)``."""
    n = len(dataset)
    if isinstance(test_size, bool) or not isinstance(test_size, int) or not 0 < test_size < n:
        raise ValueError(f"test_size: expected an int in [1, {n - 1}], got {test_size!r}")
    cut = n - test_size
    start = dataset.first_index
    return (
        Dataset(
            dataset.images[:cut],
            dataset.labels[:cut],
            dataset.num_classes,
            dataset.name,
            start,
            dataset.classes,
        ),
        Dataset(
            dataset.images[cut:],
            dataset.labels[cut:],
            dataset.num_classes,
            dataset.name,
            start + cut,
            dataset.classes,
        ),
    )


def _find(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _require(directory: Path, stem: str) -> Path:
    found = _find(directory, stem)
    if found is None:
        raise DatasetError(
            f"{directory / stem}[.gz]: file not found (MNIST needs it; the four files are at "
            "https://ossci-datasets.s3.amazonaws.com/mnist/, or pass download=True, "
            "xpnet train --download)"
        )
    return found


def _verified(path: Path, verify: bool) -> Path:
    if verify and path.name in MNIST_MD5:
        got = md5sum(path)
        if got != MNIST_MD5[path.name]:
            raise DatasetError(
                f"{path}: checksum mismatch: md5 {got}, expected {MNIST_MD5[path.name]} "
                "(the file is corrupt or not the official one)"
            )
    return path


def _needs_download(folder: Path) -> bool:
    """The test files are missing, or an official file there fails its checksum."""
    if _find(folder, "t10k-images-idx3-ubyte") is None:
        return True
    return any(
        (folder / name).is_file() and md5sum(folder / name) != md5
        for name, md5 in MNIST_MD5.items()
    )


def load_mnist(
    directory: str | os.PathLike[str], verify: bool = True, download: bool = False
) -> tuple[Dataset, Dataset]:
    """Load MNIST (or a same-format set) from a directory of IDX files.

    With the training files present (``train-images-idx3-ubyte[.gz]``) this gives the
    official 60,000 / 10,000 split; with only the test files it splits those 10,000
    images into the first 8,000 for training and the last 2,000 for testing.

    Parameters
    ----------
    directory : path-like
        Folder holding the files.
    verify : bool, default True
        Check the official files' MD5 checksums (gzip files only).
    download : bool, default False
        When the test files are missing, fetch the four official files into ``directory``
        first (see :func:`xpnet.data.download`).

    Returns
    -------
    (Dataset, Dataset)
        Training and test sets, images ``(N, 1, 28, 28)`` uint8.
    """
    folder = Path(directory).expanduser()
    if download and _needs_download(folder):
        from ._download import download as fetch

        fetch("mnist", folder)
    if not folder.is_dir():
        what = (
            f"is {kind_of(folder)}, expected the folder holding MNIST"
            if folder.exists()
            else (
                "MNIST directory not found (the files are at "
                "https://ossci-datasets.s3.amazonaws.com/mnist/, or pass download=True, "
                "xpnet train --download)"
            )
        )
        raise DatasetError(f"{folder}: {what}")
    test_images = _require(folder, "t10k-images-idx3-ubyte")
    test_labels = _require(folder, "t10k-labels-idx1-ubyte")
    test = load_images_labels(
        _verified(test_images, verify), _verified(test_labels, verify), num_classes=10
    )
    train_images = _find(folder, "train-images-idx3-ubyte")
    train_labels = _find(folder, "train-labels-idx1-ubyte")
    if (train_images is None) != (train_labels is None):
        # Half a training set is a broken download, not a reason to fall back silently.
        present, absent = (
            ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
            if train_labels is None
            else ("train-labels-idx1-ubyte", "train-images-idx3-ubyte")
        )
        raise DatasetError(f"{folder}: has {present} but not {absent}[.gz]")
    if train_images is not None and train_labels is not None:
        train = load_images_labels(
            _verified(train_images, verify), _verified(train_labels, verify), num_classes=10
        )
        return train, test
    return split_last(test, 2000)


def _read_npy_member(file: Path, archive: zipfile.ZipFile, member: str) -> np.ndarray:
    """One array of an ``.npz``, its declared size checked against the archive's entry
    before anything is allocated and its data read (decompressed) no further than the
    header declares. Object arrays are refused: they need pickle."""
    info = archive.getinfo(member)
    with archive.open(info) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        except ValueError as exc:
            raise DatasetError(f"{file}: {member} is not a .npy array ({exc})") from None
        if dtype.hasobject:
            raise DatasetError(
                f"{file}: {member} holds Python objects, which need pickle to load; xpnet "
                "never unpickles data files"
            )
        needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if needed > info.file_size:
            raise DatasetError(
                f"{file}: {member} declares shape {shape} of {dtype} ({needed:,} bytes) but "
                f"its entry holds {info.file_size:,} bytes"
            )
        data = _read_up_to(stream, needed)
        if len(data) < needed:
            raise DatasetError(f"{file}: {member} is truncated")
        if stream.read(1):
            raise DatasetError(f"{file}: {member} holds more data than its header declares")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.copy()


def load_npz(
    path: str | os.PathLike[str],
    images_key: str = "images",
    labels_key: str = "labels",
    num_classes: int | None = None,
) -> Dataset:
    """Load images ``(N, H, W)`` or ``(N, C, H, W)`` and labels ``(N,)`` from an ``.npz``.

    The file is opened with ``allow_pickle=False``: loading data never runs code.

    Parameters
    ----------
    path : path-like
        An archive written by ``numpy.savez`` or ``numpy.savez_compressed``.
    images_key, labels_key : str
        The names of the two arrays in the archive.
    num_classes : int, optional
        Labels must lie in ``[0, num_classes)``; by default the largest label plus one.

    Returns
    -------
    Dataset
        uint8 images are kept as they are (normalised later on the device); other image
        dtypes must be floating point.

    Raises
    ------
    DatasetError
        Naming the file: missing, not an ``.npz`` archive, damaged (a bad CRC, a truncated
        stream), a missing key, object arrays, an array larger than its archive entry
        (checked before anything is allocated) or holding more than its header declares
        (decompression stops there), shapes that do not fit, non-integer labels or labels
        out of range.
    """
    file = Path(path)
    problem = file_problem(file, "an .npz file")
    if problem is not None:
        raise DatasetError(f"{file}: {problem}")
    try:
        with zipfile.ZipFile(file) as archive:
            members: dict[str, str] = {}
            for name in archive.namelist():  # keys as numpy.load names them: "a/b.npy" is "a/b"
                key = name.removesuffix(".npy")
                if key in members:
                    raise DatasetError(f"{file}: holds two members named {name!r}")
                members[key] = name
            for key in (images_key, labels_key):
                if key not in members:
                    if file.read_bytes()[:6] == b"\x93NUMPY":
                        raise DatasetError(
                            f"{file}: is a single .npy array, expected an .npz archive"
                        )
                    raise DatasetError(f"{file}: no array named {key!r} (it has {sorted(members)})")
            images = _read_npy_member(file, archive, members[images_key])
            labels = _read_npy_member(file, archive, members[labels_key])
    except zipfile.BadZipFile as exc:
        if file.read_bytes()[:6] == b"\x93NUMPY":
            raise DatasetError(
                f"{file}: is a single .npy array, expected an .npz archive"
            ) from None
        raise DatasetError(f"{file}: not a readable .npz archive ({exc})") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{file}: damaged .npz archive ({exc})") from None
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, or another compression
        raise DatasetError(f"{file}: an archive member xpnet cannot read ({exc})") from None
    if images.ndim == 3:
        images = images[:, None]
    if images.dtype != np.uint8 and images.dtype.kind != "f":
        raise DatasetError(
            f"{file}: {images_key!r} must be uint8 or floating point, got {images.dtype}"
        )
    if labels.dtype.kind not in "iu":
        raise DatasetError(f"{file}: {labels_key!r} must hold integers, got {labels.dtype}")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise DatasetError(f"{file}: {images_key!r} holds NaN or infinite pixel values")
    labels = labels.astype(np.int64)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
        if labels.size and int_problem("num_classes", num_classes) is not None:
            high = INT_BOUNDS["num_classes"][1]
            raise DatasetError(
                f"{file}: labels reach {num_classes - 1}, which would make {num_classes:,} "
                f"classes (at most {high:,}); the labels are damaged, or pass num_classes"
            )
    return Dataset(images, labels, num_classes, name=str(file))
