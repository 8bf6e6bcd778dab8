"""Image folders (``root/<class>/<image>``): pixels as written, labels by sorted class
name, and a clear error for each kind of bad folder."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from xpnet import data
from xpnet.data import DatasetError

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (the 'images' extra)")


def _write(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _folder(root: Path, shape: tuple[int, ...] = (5, 6, 3)) -> dict[str, list[np.ndarray]]:
    """Two classes written out of order, with files that are not images beside them."""
    rng = np.random.default_rng(0)
    written: dict[str, list[np.ndarray]] = {"zebra": [], "ant": []}
    for name in written:
        for index in range(3):
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            _write(root / name / f"{index:02d}.png", pixels)
            written[name].append(pixels)
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / "ant" / ".hidden.png").write_bytes(b"ignored")
    (root / ".cache").mkdir()
    return written


def test_folder_reads_pixels_and_labels_in_sorted_order(tmp_path: Path) -> None:
    written = _folder(tmp_path)
    dataset = data.load_image_folder(tmp_path)
    assert dataset.classes == ("ant", "zebra") and dataset.num_classes == 2
    assert dataset.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert dataset.images.shape == (6, 3, 5, 6) and dataset.images.dtype == np.uint8
    expected = np.stack([p.transpose(2, 0, 1) for p in written["ant"] + written["zebra"]])
    np.testing.assert_array_equal(dataset.images, expected)  # PNG is lossless
    train, test = data.split_last(dataset, 2)
    assert train.classes == test.classes == ("ant", "zebra")


def test_nested_folders_are_read_and_wide_images_refused(tmp_path: Path) -> None:
    _write(tmp_path / "cat" / "a.png", np.zeros((3, 3, 3), np.uint8))
    _write(tmp_path / "cat" / "more" / "b.png", np.ones((3, 3, 3), np.uint8))
    _write(tmp_path / "cat" / ".thumbs" / "c.png", np.ones((3, 3, 3), np.uint8))
    dataset = data.load_image_folder(tmp_path)
    assert len(dataset) == 2  # as torchvision walks the class folder; hidden ones skipped
    Image.fromarray(np.full((3, 3), 40000, np.uint16)).save(tmp_path / "cat" / "wide.png")
    with pytest.raises(DatasetError, match=r"wide\.png: a I;16 image \(more than 8 bits"):
        data.load_image_folder(tmp_path)


def test_grayscale_and_resizing(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "small.png", np.full((4, 4, 3), 200, np.uint8))
    _write(tmp_path / "b" / "large.png", np.full((8, 10, 3), 50, np.uint8))
    with pytest.raises(DatasetError, match=r"large\.png: 10x8 pixels, but the first image is 4x4"):
        data.load_image_folder(tmp_path)
    dataset = data.load_image_folder(tmp_path, image_size=(6, 5), grayscale=True)
    assert dataset.images.shape == (2, 1, 6, 5)
    # A uniform image stays uniform through the resize; grey of RGB (v, v, v) is v.
    assert np.unique(dataset.images[0]).tolist() == [200]
    assert np.unique(dataset.images[1]).tolist() == [50]


def test_bad_folders_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DatasetError, match="not found"):
        data.load_image_folder(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no class folders"):
        data.load_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="class 'empty' has no images"):
        data.load_image_folder(tmp_path)
    (tmp_path / "empty" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(DatasetError, match=r"broken\.png: cannot be read as an image"):
        data.load_image_folder(tmp_path)
    with pytest.raises(ValueError, match="image_size: expected a positive int"):
        data.load_image_folder(tmp_path, image_size=(0, 3))

    monkeypatch.setitem(sys.modules, "PIL.Image", None)  # as if Pillow were not installed
    with pytest.raises(DatasetError, match=r"pip install 'xpnet\[images\]'"):
        data.load_image_folder(tmp_path)
