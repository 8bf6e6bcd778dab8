"""CIFAR-10 and CIFAR-100 in their official binary format.

Each record of a binary file is its label byte(s) followed by 3,072 pixel bytes: the red,
green and blue 32x32 planes, row by row. CIFAR-10 has one label byte; CIFAR-100 has two,
the coarse (20 super-classes) then the fine (100 classes) label. The files are read from
the extracted folder (``cifar-10-batches-bin``, ``cifar-100-binary``) or straight from the
official ``.tar.gz`` without extracting it. The pickled "python version" of the same data is
refused: xpnet never unpickles data files.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._paths import file_problem, kind_of
from .files import Dataset, DatasetError, md5sum

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR_LAYOUTS",
    "CifarLayout",
    "load_cifar",
    "load_cifar_file",
    "locate_cifar",
    "read_cifar_records",
]

_PIXELS = 3 * 32 * 32

#: CIFAR-10's class names, in label order.
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: Per-channel mean and standard deviation of CIFAR-10's 50,000 training images (in [0, 1]).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
#: The same for CIFAR-100's training images.
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps what, as its official binary archive has it.

    Attributes
    ----------
    name : str
        ``"cifar10"`` or ``"cifar100"``.
    archive, md5 : str
        The official archive's file name and its published MD5 sum.
    folder : str
        The folder the archive holds the files in.
    train_files, test_files : tuple of str
        The binary files of each split, in order.
    records_per_file : dict
        How many images each official file holds (its exact size is that times the record
        size).
    label_bytes : int
        Label bytes per record (1, or 2 for CIFAR-100's coarse and fine labels).
    """

    name: str
    archive: str
    md5: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    records_per_file: dict[str, int]
    label_bytes: int

    @property
    def record_size(self) -> int:
        """Bytes per image: the label bytes and 3,072 pixels."""
        return self.label_bytes + _PIXELS


_CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))

#: The two official binary archives (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR_LAYOUTS: dict[str, CifarLayout] = {
    "cifar10": CifarLayout(
        name="cifar10",
        archive="cifar-10-binary.tar.gz",
        md5="c32a1d4ab5d03f1284b67883e8d87530",
        folder="cifar-10-batches-bin",
        train_files=_CIFAR10_TRAIN,
        test_files=("test_batch.bin",),
        records_per_file={name: 10_000 for name in (*_CIFAR10_TRAIN, "test_batch.bin")},
        label_bytes=1,
    ),
    "cifar100": CifarLayout(
        name="cifar100",
        archive="cifar-100-binary.tar.gz",
        md5="03b5dce01913d631647c71ecec9e9cb8",
        folder="cifar-100-binary",
        train_files=("train.bin",),
        test_files=("test.bin",),
        records_per_file={"train.bin": 50_000, "test.bin": 10_000},
        label_bytes=2,
    ),
}

_WHERE = (
    "download the binary version ({archive}) from https://www.cs.toronto.edu/~kriz/cifar.html "
    "into {folder}, or pass download=True (xpnet train --download)"
)


def _looks_pickled(raw: bytes) -> bool:
    # Pickle protocols 2-5 start with the PROTO opcode 0x80 and the protocol number.
    return len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5


def read_cifar_records(
    raw: bytes,
    *,
    name: str,
    dataset: str = "cifar10",
    label_mode: str = "fine",
    expected_records: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the records of one CIFAR binary file.

    Parameters
    ----------
    raw : bytes
        The file's contents.
    name : str
        The file's name, for messages.
    dataset : {"cifar10", "cifar100"}
    label_mode : {"fine", "coarse"}
        CIFAR-100's label: the 100 classes or the 20 super-classes (CIFAR-10 has one).
    expected_records : int, optional
        The number of images the file must hold (the official files' counts).

    Returns
    -------
    images : numpy.ndarray
        uint8 ``(N, 3, 32, 32)``.
    labels : numpy.ndarray
        int64 ``(N,)``.

    Raises
    ------
    DatasetError
        Naming the file: a pickled file (the "python version"), a size that is not a whole
        number of records or not the expected count, or a label out of range (with the
        record it is in).
    """
    layout = _layout(dataset)
    coarse = _label_mode(label_mode, layout)
    if _looks_pickled(raw):
        raise DatasetError(
            f"{name}: is a Python pickle (CIFAR's 'python version'); xpnet reads the binary "
            f"version ({layout.archive}, files *.bin) and never unpickles data files"
        )
    size = layout.record_size
    if len(raw) == 0 or len(raw) % size:
        raise DatasetError(
            f"{name}: {len(raw):,} bytes is not a whole number of {layout.name} records of "
            f"{size:,} bytes ({layout.label_bytes} label byte(s) + {_PIXELS:,} pixels); the "
            "file is truncated or not a CIFAR binary file"
        )
    count = len(raw) // size
    if expected_records is not None and count != expected_records:
        raise DatasetError(
            f"{name}: holds {count:,} records ({len(raw):,} bytes), expected "
            f"{expected_records:,} ({expected_records * size:,} bytes); the file is "
            "truncated or not the official one"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(count, size)
    # CIFAR-100 records carry the coarse (20 super-classes) then the fine (100) label.
    limits = (20, 100) if layout.label_bytes == 2 else (10,)
    for column, limit in enumerate(limits):
        bad = np.flatnonzero(records[:, column] >= limit)
        if bad.size:
            which = ("coarse ", "fine ")[column] if layout.label_bytes == 2 else ""
            raise DatasetError(
                f"{name}: record {int(bad[0])} has {which}label {int(records[bad[0], column])}, "
                f"expected 0-{limit - 1} ({bad.size:,} record(s) out of range); the file is "
                f"damaged or not a {layout.name} file"
            )
    label_column = 0 if (coarse or layout.label_bytes == 1) else 1
    labels = records[:, label_column].astype(np.int64)
    images = records[:, layout.label_bytes :].reshape(count, 3, 32, 32).copy()
    return images, labels


def _layout(dataset: str) -> CifarLayout:
    try:
        return CIFAR_LAYOUTS[dataset]
    except (KeyError, TypeError):
        raise ValueError(
            f"dataset: expected one of {sorted(CIFAR_LAYOUTS)}, got {dataset!r}"
        ) from None


def _label_mode(label_mode: str, layout: CifarLayout) -> bool:
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode: expected 'fine' or 'coarse', got {label_mode!r}")
    if label_mode == "coarse" and layout.label_bytes == 1:
        raise ValueError("label_mode: 'coarse' applies to cifar100; cifar10 has one label")
    return label_mode == "coarse"


def _num_classes(layout: CifarLayout, coarse: bool) -> int:
    return 20 if coarse else (100 if layout.name == "cifar100" else 10)


def load_cifar_file(
    path: str | os.PathLike[str], dataset: str = "cifar10", label_mode: str = "fine"
) -> Dataset:
    """Read one CIFAR binary file (e.g. ``data_batch_1.bin``) into a :class:`Dataset`.

    Any whole number of records is accepted; :func:`load_cifar` also checks the official
    files' exact sizes.

    Parameters
    ----------
    path : path-like
    dataset : {"cifar10", "cifar100"}
    label_mode : {"fine", "coarse"}
        CIFAR-100 only: the 100 classes or the 20 super-classes.

    Raises
    ------
    DatasetError
        See :func:`read_cifar_records`; also a missing file or a folder.
    """
    layout = _layout(dataset)
    coarse = _label_mode(label_mode, layout)
    file = Path(path)
    problem = file_problem(file)
    if problem is not None:
        raise DatasetError(f"{file}: {problem}")
    images, labels = read_cifar_records(
        file.read_bytes(), name=str(file), dataset=dataset, label_mode=label_mode
    )
    return Dataset(images, labels, _num_classes(layout, coarse), name=str(file))


def _read_members(
    archive: Path, layout: CifarLayout, names: tuple[str, ...], exact: bool
) -> dict[str, bytes]:
    """The named files of the official archive, read in memory: nothing is extracted, so
    no member path can land outside the folder; only regular files no larger than the
    official ones (of exactly their size with ``exact``) are read."""
    wanted = {f"{layout.folder}/{name}": name for name in names}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                key = wanted.get(member.name.lstrip("./"))
                if key is None:
                    continue
                expected = layout.records_per_file[key] * layout.record_size
                wrong_size = member.size != expected if exact else member.size > expected
                if not member.isfile() or wrong_size:
                    raise DatasetError(
                        f"{archive}: member {member.name} is not a file of {expected:,} bytes "
                        f"({member.size:,}); the archive is not the official one"
                    )
                stream = tar.extractfile(member)
                assert stream is not None  # a regular file always has a stream
                found[key] = stream.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{archive}: cannot be read as a .tar.gz ({exc})") from None
    missing = [name for name in names if name not in found]
    if missing:
        raise DatasetError(f"{archive}: has no {layout.folder}/{missing[0]}")
    return found


def locate_cifar(directory: Path, layout: CifarLayout) -> tuple[str, Path]:
    """Where ``directory`` holds a CIFAR variant: ``("folder", path)`` for extracted files,
    ``("archive", path)`` for the official archive; a :class:`DatasetError` saying where to
    get the data when neither is there."""
    for folder in (directory / layout.folder, directory):
        if (folder / layout.test_files[0]).is_file():
            return "folder", folder
    if (directory / layout.archive).is_file():
        return "archive", directory / layout.archive
    where = _WHERE.format(archive=layout.archive, folder=directory)
    raise DatasetError(
        f"{directory}: no {layout.name} data (neither {layout.folder}/ nor {layout.archive}); "
        f"{where}"
    )


def load_cifar(
    directory: str | os.PathLike[str],
    dataset: str = "cifar10",
    label_mode: str = "fine",
    *,
    verify: bool = True,
    download: bool = False,
) -> tuple[Dataset, Dataset]:
    """Load CIFAR-10 or CIFAR-100 (official binary format) as training and test sets.

    Parameters
    ----------
    directory : path-like
        A folder holding the extracted files (``cifar-10-batches-bin/`` or
        ``cifar-100-binary/``, or the files themselves) or the official archive
        (``cifar-10-binary.tar.gz``, ``cifar-100-binary.tar.gz``), read without extracting.
    dataset : {"cifar10", "cifar100"}
    label_mode : {"fine", "coarse"}
        CIFAR-100 only: the 100 classes or the 20 super-classes.
    verify : bool, default True
        Check the archive's MD5 sum and every file's exact official size (a file cut at a
        record boundary is caught too). ``False`` accepts any whole number of records,
        e.g. a subset written in the same format.
    download : bool, default False
        Fetch the official archive into ``directory`` first when no data is there (see
        :func:`xpnet.data.download`).

    Returns
    -------
    (Dataset, Dataset)
        50,000 training and 10,000 test images, uint8 ``(N, 3, 32, 32)``.

    Raises
    ------
    DatasetError
        Naming the file at fault, and where to get the data when there is none.
    """
    layout = _layout(dataset)
    coarse = _label_mode(label_mode, layout)
    folder = Path(directory).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DatasetError(
            f"{folder}: is {kind_of(folder)}, expected the folder holding {layout.name}"
        )
    if download:
        try:
            found: str | None = locate_cifar(folder, layout)[0]
        except DatasetError:
            found = None
        if found != "folder":
            # Nothing there, or the archive: fetching keeps an archive whose MD5 matches and
            # replaces a corrupt or partial one.
            from ._download import download as fetch

            fetch(layout.name, folder)
    kind, where = locate_cifar(folder, layout)
    names = (*layout.train_files, *layout.test_files)
    if kind == "archive":
        if verify:
            got = md5sum(where)
            if got != layout.md5:
                raise DatasetError(
                    f"{where}: checksum mismatch: md5 {got}, expected {layout.md5} (the "
                    "archive is corrupt or not the official one)"
                )
        raw = _read_members(where, layout, names, exact=verify)
        sources = {name: (f"{where}:{layout.folder}/{name}", raw[name]) for name in names}
    else:
        sources = {}
        for name in names:
            file = where / name
            if not file.is_file():
                raise DatasetError(f"{file}: file not found ({layout.name} needs it)")
            sources[name] = (str(file), file.read_bytes())

    def split(files: tuple[str, ...]) -> Dataset:
        parts = [
            read_cifar_records(
                sources[name][1],
                name=sources[name][0],
                dataset=layout.name,
                label_mode=label_mode,
                expected_records=layout.records_per_file[name] if verify else None,
            )
            for name in files
        ]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        names = CIFAR10_CLASSES if layout.name == "cifar10" else ()
        return Dataset(images, labels, _num_classes(layout, coarse), name=f"{where}", classes=names)

    train = split(layout.train_files)
    test = split(layout.test_files)
    return train, test
