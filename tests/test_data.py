"""Datasets and the batch iterator: IDX and .npz files, MNIST, digits, DataLoader.

Oracles: IDX files are written here byte by byte from the format's definition and compared
with the arrays they were made from; MD5 sums come from :mod:`hashlib` directly; the
normalisation is recomputed on the host in float64.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path
from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnet
from helpers import BackendCase, assert_close, tolerance
from xpnet import backends, data
from xpnet.data import DataLoader, Dataset, DatasetError

TYPE_CODES = {"u1": 0x08, "i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def idx_bytes(array: np.ndarray, code: str | None = None) -> bytes:
    """An IDX file from the format's definition: 0, 0, type, ndim, big-endian dims, data."""
    code = code or array.dtype.str.replace("|", "").replace("<", ">")
    header = bytes([0, 0, TYPE_CODES[code], array.ndim])
    dims = b"".join(struct.pack(">I", n) for n in array.shape)
    return header + dims + array.astype(code).tobytes()


def write_idx(path: Path, array: np.ndarray, code: str | None = None) -> Path:
    payload = idx_bytes(array, code)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)
    return path


def synthetic_pair(
    folder: Path, prefix: str, n: int, *, size: int = 6, seed: int = 0, gz: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    end = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{end}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{end}", labels)
    return images, labels


# -- IDX ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", list(TYPE_CODES))
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_load_idx_matches_the_array_written(
    tmp_path: Path, code: str, shape: tuple[int, ...], suffix: str
) -> None:
    rng = np.random.default_rng(len(shape))
    if code[-2] == "f":
        array = rng.normal(size=shape).astype(code)
    else:
        info = np.iinfo(np.dtype(code))
        array = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(code)
    path = write_idx(tmp_path / f"file-idx{len(shape)}{suffix}", array, code)
    got = data.load_idx(path)
    assert got.shape == shape
    assert got.dtype == np.dtype(code).newbyteorder("=")
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, array)
    got.flat[0] = 0  # a writable copy, not a view of the file's bytes


def test_load_idx_zero_length_dimension(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "empty-idx3-ubyte", np.zeros((0, 4, 4), np.uint8))
    assert data.load_idx(path).shape == (0, 4, 4)


def _corrupt_variants(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    files = {
        "truncated data": (good[:-5], r"truncated: 35 bytes, header \(2, 3, 4\) needs 40 bytes"),
        "too long": (
            good + b"\x00\x01",
            r"longer than its header declares: header \(2, 3, 4\) needs 40 bytes",
        ),
        "truncated header": (good[:10], r"truncated inside the header"),
        "empty": (b"", r"truncated: 0 bytes, no IDX header"),
        "bad type code": (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), r"not an IDX file"),
        "not zero-led": (b"\x1f\x00\x08\x01" + good[4:], r"not an IDX file"),
    }
    out = {}
    for i, (name, (payload, pattern)) in enumerate(files.items()):
        path = tmp_path / f"case{i}-idx3-ubyte"
        path.write_bytes(payload)
        out[name] = (path, pattern)
    return out


def test_load_idx_malformed_files_name_the_file(tmp_path: Path) -> None:
    for name, (path, pattern) in _corrupt_variants(tmp_path).items():
        with pytest.raises(DatasetError, match=pattern) as info:
            data.load_idx(path)
        assert str(path) in str(info.value), name


def test_load_idx_wrong_magic_missing_file_and_broken_gzip(tmp_path: Path) -> None:
    labels = write_idx(tmp_path / "labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"wrong magic number 2049, expected 2051") as info:
        data.load_idx(labels, expected_magic=2051)
    assert str(labels) in str(info.value)
    missing = tmp_path / "nope-idx3-ubyte.gz"
    with pytest.raises(DatasetError, match="file not found") as info:
        data.load_idx(missing)
    assert str(missing) in str(info.value)
    good = tmp_path / "good-idx1-ubyte.gz"
    write_idx(good, np.arange(300, dtype=np.uint8) % 7)
    raw = good.read_bytes()
    cases = {
        "cut": raw[: len(raw) // 2],
        "flipped": raw[: len(raw) // 2]
        + bytes([raw[len(raw) // 2] ^ 0xFF])
        + raw[len(raw) // 2 + 1 :],
        "not gzip": b"plain text, not gzip",
    }
    for name, payload in cases.items():
        bad = tmp_path / f"{name.replace(' ', '_')}-idx1-ubyte.gz"
        bad.write_bytes(payload)
        with pytest.raises(DatasetError) as info:
            data.load_idx(bad)
        assert str(bad) in str(info.value), name


def test_load_images_labels_and_its_errors(tmp_path: Path) -> None:
    images, labels = synthetic_pair(tmp_path, "x", 9, gz=False)
    ds = data.load_images_labels(tmp_path / "x-images-idx3-ubyte", tmp_path / "x-labels-idx1-ubyte")
    assert ds.images.shape == (9, 1, 6, 6) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[:, 0], images)
    np.testing.assert_array_equal(ds.labels, labels.astype(np.int64))
    assert ds.labels.dtype == np.int64 and ds.num_classes == 10 and len(ds) == 9
    # Swapped files: each has the other's magic number.
    with pytest.raises(DatasetError, match="wrong magic number 2049, expected 2051"):
        data.load_images_labels(tmp_path / "x-labels-idx1-ubyte", tmp_path / "x-images-idx3-ubyte")
    write_idx(tmp_path / "short-labels", labels[:5])
    with pytest.raises(DatasetError, match=r"has 9 images but .*short-labels has 5 labels"):
        data.load_images_labels(tmp_path / "x-images-idx3-ubyte", tmp_path / "short-labels")
    big = labels.copy()
    big[3] = 12
    write_idx(tmp_path / "big-labels", big)
    assert (
        data.load_images_labels(
            tmp_path / "x-images-idx3-ubyte", tmp_path / "big-labels"
        ).num_classes
        == 13
    )
    with pytest.raises(
        DatasetError, match=r"big-labels: labels must lie in \[0, 10\), got values from \d+ to 12"
    ):
        data.load_images_labels(
            tmp_path / "x-images-idx3-ubyte", tmp_path / "big-labels", num_classes=10
        )


# -- MNIST -------------------------------------------------------------------------------

MNIST = data.find_mnist()
needs_mnist = pytest.mark.skipif(
    MNIST is None, reason="MNIST files not found (set XPNET_MNIST_DIR or ../shared/data/mnist)"
)


@needs_mnist
def test_mnist_test_files_split_8000_2000() -> None:
    assert MNIST is not None
    train, test = data.load_mnist(MNIST)
    assert (len(train), len(test)) == (8000, 2000)
    assert train.images.shape == (8000, 1, 28, 28) and test.images.shape == (2000, 1, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.num_classes == test.num_classes == 10
    images = data.load_idx(MNIST / "t10k-images-idx3-ubyte.gz")
    labels = data.load_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(train.images[:, 0], images[:8000])
    np.testing.assert_array_equal(test.images[:, 0], images[8000:])
    np.testing.assert_array_equal(test.labels, labels[8000:])
    assert sorted(np.unique(train.labels)) == list(range(10))
    # Mean and std of the pixels: what MNIST_MEAN / MNIST_STD quote (0.1307, 0.3081).
    pixels = images / 255.0
    assert abs(pixels.mean() - data.MNIST_MEAN) < 0.005
    assert abs(pixels.std() - data.MNIST_STD) < 0.005


@needs_mnist
def test_mnist_checksums_match_the_official_ones() -> None:
    assert MNIST is not None
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        expected = hashlib.md5((MNIST / name).read_bytes(), usedforsecurity=False).hexdigest()
        assert data.md5sum(MNIST / name) == expected == data.MNIST_MD5[name]


@needs_mnist
def test_mnist_corrupted_copy_fails_its_checksum(tmp_path: Path) -> None:
    assert MNIST is not None
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(MNIST / name, tmp_path / name)
    victim = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(victim.read_bytes())
    raw[-12] ^= 0x01  # inside the compressed stream: still a gzip file, other bytes
    victim.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="checksum mismatch") as info:
        data.load_mnist(tmp_path)
    assert str(victim) in str(info.value)
    assert data.MNIST_MD5[victim.name] in str(info.value)


@needs_mnist
def test_mnist_uncompressed_files_load_the_same(tmp_path: Path) -> None:
    assert MNIST is not None
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(MNIST / f"{stem}.gz", "rb") as source:
            (tmp_path / stem).write_bytes(source.read())
    raw_train, raw_test = data.load_mnist(tmp_path)
    gz_train, gz_test = data.load_mnist(MNIST)
    np.testing.assert_array_equal(raw_train.images, gz_train.images)
    np.testing.assert_array_equal(raw_test.labels, gz_test.labels)


def test_full_mnist_layout_gives_the_official_split(tmp_path: Path) -> None:
    train_images, train_labels = synthetic_pair(tmp_path, "train", 12, size=28, seed=1)
    test_images, test_labels = synthetic_pair(tmp_path, "t10k", 5, size=28, seed=2)
    # Same names as the official files, other bytes: the checksum refuses them...
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz: checksum mismatch"):
        data.load_mnist(tmp_path)
    # ... and verify=False reads them, train files as the training set, no 8000/2000 cut.
    train, test = data.load_mnist(tmp_path, verify=False)
    assert (len(train), len(test)) == (12, 5)
    np.testing.assert_array_equal(train.images[:, 0], train_images)
    np.testing.assert_array_equal(train.labels, train_labels)
    np.testing.assert_array_equal(test.images[:, 0], test_images)
    np.testing.assert_array_equal(test.labels, test_labels)
    # Without the training files, the test files are split (last 2000: too few here).
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).unlink()
    with pytest.raises(ValueError, match=r"test_size: expected an int in \[1, 4\], got 2000"):
        data.load_mnist(tmp_path, verify=False)


def test_mnist_missing_files_and_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="MNIST directory not found") as info:
        data.load_mnist(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value)
    synthetic_pair(tmp_path, "t10k", 3)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\[\.gz\]: file not found"):
        data.load_mnist(tmp_path, verify=False)
    synthetic_pair(tmp_path, "t10k", 3)
    synthetic_pair(tmp_path, "train", 4)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        DatasetError, match=r"has train-images-idx3-ubyte but not train-labels-idx1-ubyte"
    ):
        data.load_mnist(tmp_path, verify=False)


def test_find_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPNET_MNIST_DIR", str(tmp_path / "anywhere"))
    # The variable wins even when the folder is missing, so load_mnist names it.
    assert data.find_mnist() == tmp_path / "anywhere"
    monkeypatch.delenv("XPNET_MNIST_DIR")
    checkout = tmp_path / "work" / "main"
    (checkout / "src").mkdir(parents=True)
    assert data.find_mnist(checkout / "src") is None
    shared = tmp_path / "work" / "shared" / "data" / "mnist"
    shared.mkdir(parents=True)
    assert data.find_mnist(checkout) is None  # a folder without the files is not it
    (shared / "t10k-images-idx3-ubyte.gz").write_bytes(b"")
    assert data.find_mnist(checkout) == shared
    assert data.find_mnist(checkout / "src") == shared
    monkeypatch.chdir(checkout)
    assert data.find_mnist() == shared


# -- npz -----------------------------------------------------------------------------------


def test_load_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 5, 5), dtype=np.uint8)
    labels = np.array([0, 1, 2, 1, 0, 2], dtype=np.int32)
    np.savez(tmp_path / "a.npz", images=images, labels=labels)
    ds = data.load_npz(tmp_path / "a.npz")
    assert ds.images.shape == (6, 1, 5, 5) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[:, 0], images)
    assert ds.labels.dtype == np.int64 and ds.num_classes == 3
    floats = rng.normal(size=(4, 3, 2, 2)).astype(np.float32)
    np.savez_compressed(tmp_path / "b.npz", x=floats, y=np.arange(4))
    ds = data.load_npz(tmp_path / "b.npz", images_key="x", labels_key="y", num_classes=10)
    np.testing.assert_array_equal(ds.images, floats)
    assert ds.num_classes == 10


def test_load_npz_errors_name_the_file(tmp_path: Path) -> None:
    good_images = np.zeros((3, 4, 4), np.uint8)
    cases: dict[str, tuple[Any, str]] = {}

    def case(name: str, pattern: str, **arrays: Any) -> None:
        np.savez(tmp_path / f"{name}.npz", **arrays)
        cases[name] = (tmp_path / f"{name}.npz", pattern)

    case("nolabels", r"no array named 'labels' \(it has \['images'\]\)", images=good_images)
    case(
        "objects",
        r"holds Python objects, which need pickle to load",
        images=good_images,
        labels=np.array([{"a": 1}, None, 3], dtype=object),
    )
    case(
        "floatlabels",
        r"'labels' must hold integers, got float64",
        images=good_images,
        labels=np.zeros(3),
    )
    case(
        "intimages",
        r"'images' must be uint8 or floating point, got int64",
        images=np.zeros((3, 4, 4), np.int64),
        labels=np.zeros(3, np.int64),
    )
    case(
        "shortlabels",
        r"3 images but labels of shape \(2,\)",
        images=good_images,
        labels=np.zeros(2, np.int64),
    )
    case(
        "flat",
        r"images must be \(N, C, H, W\), got shape \(3, 16\)",
        images=np.zeros((3, 16), np.uint8),
        labels=np.zeros(3, np.int64),
    )
    case(
        "negative",
        r"labels must lie in \[0, 2\), got values from -1 to 1",
        images=good_images,
        labels=np.array([0, 1, -1]),
    )
    np.save(tmp_path / "single.npy", good_images)
    cases["single"] = (tmp_path / "single.npy", "single .npy array, expected an .npz archive")
    (tmp_path / "text.npz").write_text("hello")
    cases["text"] = (tmp_path / "text.npz", "not a readable .npz archive")
    cases["missing"] = (tmp_path / "missing.npz", "file not found")
    for name, (path, pattern) in cases.items():
        with pytest.raises(DatasetError, match=pattern) as info:
            data.load_npz(path)
        assert str(path) in str(info.value), name
    np.savez(tmp_path / "range.npz", images=good_images, labels=np.array([0, 1, 2]))
    with pytest.raises(DatasetError, match=r"labels must lie in \[0, 2\), got values from 0 to 2"):
        data.load_npz(tmp_path / "range.npz", num_classes=2)


def test_split_last() -> None:
    ds = Dataset(np.zeros((5, 1, 2, 2), np.uint8), np.arange(5), 5, name="five")
    train, test = data.split_last(ds, 2)
    np.testing.assert_array_equal(train.labels, [0, 1, 2])
    np.testing.assert_array_equal(test.labels, [3, 4])
    for bad in (0, 5, 2.0, True):
        with pytest.raises(ValueError, match=r"test_size: expected an int in \[1, 4\]"):
            data.split_last(ds, bad)  # type: ignore[arg-type]


# -- DataLoader --------------------------------------------------------------------------


def _indexed(n: int, size: int = 2) -> Dataset:
    """Image i holds the value i in every pixel, label i % 3: batches say which they hold."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 1, size, size))
    return Dataset(np.ascontiguousarray(images), np.arange(n) % 3, 3)


def _seen(loader: DataLoader) -> list[int]:
    order: list[int] = []
    for x, y in loader:
        values = np.rint(xpnet.to_numpy(x)[:, 0, 0, 0] * 255).astype(int)
        np.testing.assert_array_equal(xpnet.to_numpy(y), values % 3)
        order.extend(values.tolist())
    return order


def test_loader_batches_with_and_without_drop_last() -> None:
    ds = _indexed(10)
    loader = DataLoader(ds, batch_size=3)
    assert len(loader) == 4
    assert [int(x.shape[0]) for x, _ in loader] == [3, 3, 3, 1]
    assert _seen(loader) == list(range(10))
    dropping = DataLoader(ds, batch_size=3, drop_last=True)
    assert len(dropping) == 3
    assert [int(x.shape[0]) for x, _ in dropping] == [3, 3, 3]
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=20, drop_last=True)) == 0
    assert list(DataLoader(ds, batch_size=20, drop_last=True)) == []


def test_loader_shuffle_is_seeded_per_epoch() -> None:
    ds = _indexed(23)
    a = DataLoader(ds, batch_size=4, shuffle=True, seed=7)
    b = DataLoader(ds, batch_size=4, shuffle=True, seed=7)
    first, second = _seen(a), _seen(a)
    assert sorted(first) == sorted(second) == list(range(23))  # each example once
    assert first != second  # a new order every epoch
    assert first != list(range(23))
    assert _seen(b) == first and _seen(b) == second  # same seed, same sequence
    b.set_epoch(0)  # replaying an epoch (what resuming does)
    assert _seen(b) == first
    assert a.order(1).tolist() == second
    assert _seen(DataLoader(ds, batch_size=4, shuffle=True, seed=8)) != first
    # drop_last drops different examples each epoch, never one twice.
    dropped = DataLoader(ds, batch_size=4, shuffle=True, seed=7, drop_last=True)
    seen = _seen(dropped)
    assert len(seen) == 20 and len(set(seen)) == 20 and seen == first[:20]


def test_loader_arguments_are_checked() -> None:
    ds = _indexed(4)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size: expected a positive int"):
            DataLoader(ds, batch_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="std: expected positive numbers, got 0"):
        DataLoader(ds, std=0)
    with pytest.raises(ValueError, match="dtype: expected 'float32' or 'float64', got 'float16'"):
        DataLoader(ds, dtype="float16")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loader_normalises_on_the_backend(
    backend: BackendCase, device_paths: str, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(7, 2, 3, 3), dtype=np.uint8)
    ds = Dataset(images, rng.integers(0, 4, size=7), 4)
    sent: list[np.dtype[Any]] = []  # the dtypes of the image batches moved to the device
    real_asarray = backends.asarray

    def spy(obj: Any, dtype: Any = None) -> Any:
        if np.ndim(obj) == 4:
            sent.append(np.asarray(obj).dtype)
        return real_asarray(obj, dtype)

    monkeypatch.setattr(backends, "asarray", spy)
    loader = DataLoader(ds, batch_size=4, mean=0.25, std=0.5, dtype=dtype)
    batches = list(loader)
    # To a GPU the images cross as uint8 (a quarter of float32's bytes); where the device
    # is host memory they are converted first (nothing to save, and JAX would compile the
    # conversion for every batch shape).
    assert sent[0] == (np.uint8 if device_paths == "gpu" else np.dtype(dtype))
    reference = backend.asarray(np.zeros(1), dtype=dtype)
    for i, (x, y) in enumerate(batches):
        backend.check_like(x, reference)
        assert array_api_compat.array_namespace(y) is backend.xp
        assert y.dtype == backend.xp.int64
        part = slice(4 * i, 4 * i + 4)
        expected = (images[part].astype(np.float64) / 255.0 - 0.25) / 0.5
        assert_close(x, expected, **tolerance(dtype))
        np.testing.assert_array_equal(xpnet.to_numpy(y), ds.labels[part])


def test_loader_keeps_float_images_unscaled(backend: BackendCase) -> None:
    images = np.linspace(-2, 3, 2 * 4).reshape(2, 1, 2, 2)
    ds = Dataset(images, np.array([0, 1]), 2)
    ((x, _),) = DataLoader(ds, batch_size=2, dtype="float64")
    assert_close(x, images)
    ((x, _),) = DataLoader(ds, batch_size=2, mean=1.0, std=2.0, dtype="float64")
    assert_close(x, (images - 1.0) / 2.0)


# -- digits ------------------------------------------------------------------------------


def test_digits() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    bunch = datasets.load_digits()
    train, test = data.load_digits()
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 1, 8, 8) and train.images.dtype == np.uint8
    expected = np.rint(bunch.images * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(train.images[:, 0], expected[:1437])
    np.testing.assert_array_equal(test.images[:, 0], expected[1437:])
    np.testing.assert_array_equal(test.labels, bunch.target[1437:])
    assert train.images.max() == 255 and train.num_classes == 10
    pixels = train.images / 255.0
    assert abs(pixels.mean() - data.DIGITS_MEAN) < 1e-3
    assert abs(pixels.std() - data.DIGITS_STD) < 1e-3
    small_train, small_test = data.load_digits(test_size=100)
    assert (len(small_train), len(small_test)) == (1697, 100)


def test_digits_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DatasetError, match=r"needs scikit-learn: pip install 'xpnet\[digits\]'"):
        data.load_digits()
