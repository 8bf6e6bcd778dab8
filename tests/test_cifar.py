"""CIFAR binary files (decoding against a record-by-record reference, the fault suite) and
the checked downloads, served from a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import pickle
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from xpnet import data
from xpnet.data import DatasetError, download

MNIST = data.find_mnist()


def _records(count: int, label_bytes: int, seed: int, classes: tuple[int, ...]) -> bytes:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, size=(count, label_bytes + 3072), dtype=np.uint8)
    for column, limit in enumerate(classes):
        rows[:, column] = rng.integers(0, limit, size=count)
    return rows.tobytes()


def _decode_reference(raw: bytes, label_bytes: int, label_column: int) -> tuple[list, list]:
    """Record by record, pixel by pixel, as the format's description reads."""
    size = label_bytes + 3072
    images, labels = [], []
    for start in range(0, len(raw), size):
        record = raw[start : start + size]
        labels.append(record[label_column])
        image = np.zeros((3, 32, 32), np.uint8)
        for c in range(3):
            for i in range(32):
                for j in range(32):
                    image[c, i, j] = record[label_bytes + c * 1024 + i * 32 + j]
        images.append(image)
    return images, labels


def _write_cifar10(root: Path, per_file: int = 3) -> dict[str, bytes]:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    contents = {}
    for seed, name in enumerate(names):
        contents[name] = _records(per_file, 1, seed, (10,))
        (folder / name).write_bytes(contents[name])
    return contents


def _tar(source: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname=source.name)


def test_cifar10_folder_decodes_as_the_record_reference(tmp_path: Path) -> None:
    contents = _write_cifar10(tmp_path)
    train, test = data.load_cifar(tmp_path, verify=False)
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == np.uint8
    assert test.images.shape == (3, 3, 32, 32) and train.num_classes == 10
    expected_images, expected_labels = [], []
    for i in range(1, 6):
        images, labels = _decode_reference(contents[f"data_batch_{i}.bin"], 1, 0)
        expected_images += images
        expected_labels += labels
    np.testing.assert_array_equal(train.images, np.stack(expected_images))
    np.testing.assert_array_equal(train.labels, expected_labels)
    images, labels = _decode_reference(contents["test_batch.bin"], 1, 0)
    np.testing.assert_array_equal(test.images, np.stack(images))
    np.testing.assert_array_equal(test.labels, labels)
    # The folder itself works too, and so does the archive, read without extracting.
    same_train, _ = data.load_cifar(tmp_path / "cifar-10-batches-bin", verify=False)
    np.testing.assert_array_equal(same_train.images, train.images)
    packed = tmp_path / "packed"
    packed.mkdir()
    _tar(tmp_path / "cifar-10-batches-bin", packed / "cifar-10-binary.tar.gz")
    from_archive, test_archive = data.load_cifar(packed, verify=False)
    np.testing.assert_array_equal(from_archive.images, train.images)
    np.testing.assert_array_equal(test_archive.labels, test.labels)
    assert sorted(p.name for p in packed.iterdir()) == ["cifar-10-binary.tar.gz"]


@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
def test_cifar100_reads_fine_or_coarse_labels(tmp_path: Path, label_mode: str) -> None:
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    raw = {
        name: _records(4, 2, seed, (20, 100)) for seed, name in enumerate(["train.bin", "test.bin"])
    }
    for name, content in raw.items():
        (folder / name).write_bytes(content)
    train, test = data.load_cifar(tmp_path, "cifar100", label_mode, verify=False)
    column = 0 if label_mode == "coarse" else 1
    images, labels = _decode_reference(raw["train.bin"], 2, column)
    np.testing.assert_array_equal(train.images, np.stack(images))
    np.testing.assert_array_equal(train.labels, labels)
    assert train.num_classes == (20 if label_mode == "coarse" else 100)
    assert test.labels.tolist() == _decode_reference(raw["test.bin"], 2, column)[1]


# The fault suite: each damaged file is refused with a message naming it and the fault.


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    contents = _write_cifar10(tmp_path)
    target = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    target.write_bytes(contents["data_batch_3.bin"][:-100])
    with pytest.raises(DatasetError, match=r"data_batch_3\.bin: 9,119 bytes is not a whole number"):
        data.load_cifar(tmp_path, verify=False)


def test_wrong_size_is_refused_against_the_official_count(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)  # whole records, but 3 per file instead of 10,000
    with pytest.raises(
        DatasetError, match=r"data_batch_1\.bin: holds 3 records .* expected 10,000"
    ):
        data.load_cifar(tmp_path)
    # A CIFAR-100 file (2 label bytes) is not mistaken for CIFAR-10 records.
    stray = tmp_path / "c100.bin"
    stray.write_bytes(_records(5, 2, 0, (20, 100)))
    with pytest.raises(DatasetError, match="not a whole number of cifar10 records of 3,073"):
        data.load_cifar_file(stray)


@pytest.mark.parametrize(
    ("dataset", "label_bytes", "bad_column", "bad_value", "message"),
    [
        ("cifar10", 1, 0, 10, "record 2 has label 10, expected 0-9"),
        ("cifar100", 2, 0, 20, "record 2 has coarse label 20, expected 0-19"),
        ("cifar100", 2, 1, 100, "record 2 has fine label 100, expected 0-99"),
    ],
)
def test_labels_out_of_range_are_refused(
    tmp_path: Path, dataset: str, label_bytes: int, bad_column: int, bad_value: int, message: str
) -> None:
    classes = (20, 100) if label_bytes == 2 else (10,)
    rows = np.frombuffer(_records(4, label_bytes, 0, classes), np.uint8).reshape(4, -1).copy()
    rows[2, bad_column] = bad_value
    file = tmp_path / "batch.bin"
    file.write_bytes(rows.tobytes())
    with pytest.raises(DatasetError, match=message):
        data.load_cifar_file(file, dataset)


class _Exploding:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_explode, ())


def _explode() -> None:
    raise AssertionError("the pickle was executed")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickled_python_version_is_refused_unread(tmp_path: Path, protocol: int) -> None:
    file = tmp_path / "data_batch_1.bin"
    file.write_bytes(pickle.dumps({b"data": _Exploding(), b"labels": [0]}, protocol=protocol))
    with pytest.raises(DatasetError, match="is a Python pickle .* never unpickles"):
        data.load_cifar_file(file)


def test_archive_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_cifar10(tmp_path / "src")
    packed = tmp_path / "packed"
    packed.mkdir()
    archive = packed / "cifar-10-binary.tar.gz"
    _tar(tmp_path / "src" / "cifar-10-batches-bin", archive)
    # verify=True: the archive's MD5 is checked before anything is read.
    with pytest.raises(DatasetError, match="checksum mismatch: md5 .* expected c32a1d4a"):
        data.load_cifar(packed)
    # verify=True with the right sum but small members: their official size is checked.
    layout = data.CIFAR_LAYOUTS["cifar10"]
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    with monkeypatch.context() as patch:
        patch.setitem(data.CIFAR_LAYOUTS, "cifar10", dataclasses.replace(layout, md5=digest))
        with pytest.raises(
            DatasetError, match=r"member .*data_batch_1\.bin is not a file of 30,730,000"
        ):
            data.load_cifar(packed)
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DatasetError, match="cannot be read as a .tar.gz"):
        data.load_cifar(packed, verify=False)


def test_missing_data_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        data.load_cifar(tmp_path)
    text = str(info.value)
    assert (
        "cifar-10-binary.tar.gz" in text and "https://www.cs.toronto.edu/~kriz/cifar.html" in text
    )
    assert "download=True" in text and "--download" in text
    with pytest.raises(ValueError, match="dataset: expected one of"):
        data.load_cifar(tmp_path, "cifar1000")
    with pytest.raises(ValueError, match="label_mode: 'coarse' applies to cifar100"):
        data.load_cifar(tmp_path, "cifar10", "coarse")


# Downloads, from a server on 127.0.0.1 (the official hosts are unreachable here).


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, format: str, *args: object) -> None:
        self.requests.append(self.path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """``(base URL, the folder it serves, the paths requested)``."""
    root = tmp_path / "served"
    root.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root, requests
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def mnist_test_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """MNIST's download narrowed to the two official files present here, with their
    official checksums."""
    names = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    spec = data.DOWNLOADS["mnist"]
    narrowed = data.Download({n: data.MNIST_MD5[n] for n in names}, spec.mirrors)
    monkeypatch.setitem(data.DOWNLOADS, "mnist", narrowed)


@pytest.mark.skipif(
    MNIST is None, reason="MNIST files not found (set XPNET_MNIST_DIR or ../shared/data/mnist)"
)
def test_mnist_download_checks_the_official_sums(
    server, mnist_test_only, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, served, requests = server
    assert MNIST is not None
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(MNIST / name, served / name)
    target = tmp_path / "mnist"
    dead = "http://127.0.0.1:9/"  # the discard port: nothing answers, the next mirror is tried
    assert download("mnist", target, mirrors=[dead, url], quiet=True) == target
    train, test = data.load_mnist(target)  # verified again against MNIST_MD5
    assert (len(train), len(test)) == (8000, 2000)
    assert sorted(p.name for p in target.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    # Files already there with the right sum are not fetched again.
    count = len(requests)
    download("mnist", target, mirrors=[url], quiet=True)
    assert len(requests) == count
    # load_mnist(download=True) fetches into an empty folder, from $XPNET_DATA_MIRROR.
    monkeypatch.setenv("XPNET_DATA_MIRROR", url)
    fetched, _ = data.load_mnist(tmp_path / "fresh", download=True)
    np.testing.assert_array_equal(fetched.images, train.images)


def test_download_refuses_a_corrupt_file_and_leaves_nothing(
    server, mnist_test_only, tmp_path: Path
) -> None:
    url, served, _ = server
    fake = gzip.compress(b"\x00\x00\x08\x03" + bytes(12))
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (served / name).write_bytes(fake)
    target = tmp_path / "mnist"
    with pytest.raises(DatasetError) as info:
        download("mnist", target, mirrors=[url], quiet=True)
    text = str(info.value)
    assert "checksum mismatch" in text and data.MNIST_MD5["t10k-images-idx3-ubyte.gz"] in text
    assert "put it in" in text
    assert list(target.iterdir()) == []  # no partial or unverified file


def test_download_reports_every_mirror_that_failed(server, tmp_path: Path) -> None:
    url, _, _ = server  # serves nothing: 404
    with pytest.raises(DatasetError) as info:
        download("cifar10", tmp_path / "c", mirrors=["http://127.0.0.1:9/", url], quiet=True)
    text = str(info.value)
    assert "http://127.0.0.1:9/cifar-10-binary.tar.gz" in text and "File not found" in text
    assert "md5 c32a1d4ab5d03f1284b67883e8d87530" in text
    assert list((tmp_path / "c").iterdir()) == []
    with pytest.raises(ValueError, match="dataset: expected one of"):
        download("imagenet", tmp_path)
    with pytest.raises(ValueError, match="mirrors: expected a non-empty sequence"):
        download("mnist", tmp_path, mirrors="http://127.0.0.1/")


def test_cifar_download_then_load(server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url, served, _ = server
    _write_cifar10(tmp_path / "src")
    _tar(tmp_path / "src" / "cifar-10-batches-bin", served / "cifar-10-binary.tar.gz")
    digest = hashlib.md5((served / "cifar-10-binary.tar.gz").read_bytes()).hexdigest()
    monkeypatch.setitem(
        data.DOWNLOADS,
        "cifar10",
        data.Download({"cifar-10-binary.tar.gz": digest}, (url,)),
    )
    train, test = data.load_cifar(tmp_path / "cifar", download=True, verify=False)
    assert (len(train), len(test)) == (15, 3)
    reference, _ = data.load_cifar(tmp_path / "src", verify=False)
    np.testing.assert_array_equal(train.images, reference.images)
    archive = tmp_path / "cifar" / "cifar-10-binary.tar.gz"
    assert archive.is_file() and archive.stat().st_mode & 0o044 == 0o044  # others may read
    # A damaged archive is fetched again by download=True.
    archive.write_bytes(archive.read_bytes()[:1000])
    repaired, _ = data.load_cifar(tmp_path / "cifar", download=True, verify=False)
    np.testing.assert_array_equal(repaired.images, reference.images)
