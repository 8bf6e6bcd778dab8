"""Images in class folders (``root/<class>/<image>``), torchvision's ``ImageFolder`` layout,
decoded with Pillow (the ``images`` extra)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._paths import kind_of
from .files import Dataset, DatasetError

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

#: The file endings :func:`load_image_folder` reads (case does not matter).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def _pillow() -> Any:
    try:
        return importlib.import_module("PIL.Image")
    except ImportError:
        raise DatasetError(
            "image folders are decoded with Pillow: pip install 'xpnet[images]'"
        ) from None


def _pair(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in pair
    ):
        raise ValueError(f"image_size: expected a positive int or (height, width), got {size!r}")
    return int(pair[0]), int(pair[1])


def load_image_folder(
    root: str | os.PathLike[str],
    image_size: int | tuple[int, int] | None = None,
    grayscale: bool = False,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
) -> Dataset:
    """Read ``root/<class>/<image>`` into a :class:`Dataset`, as torchvision's
    ``ImageFolder`` lays it out.

    Classes are the sub-folders of ``root`` in sorted order (label 0 is the first); images
    are the files with one of ``extensions`` anywhere below each (in nested folders too, as
    torchvision reads them), in sorted order, and other files are skipped. Hidden files and
    folders (starting with ``.``) are ignored.

    Parameters
    ----------
    root : path-like
    image_size : int or (int, int), optional
        Resize every image to ``(height, width)`` (bilinear, Pillow's). Without it every
        image must have the first image's size.
    grayscale : bool, default False
        One channel (Pillow's ``L``) instead of three (``RGB``).
    extensions : tuple of str
        The file endings to read.

    Returns
    -------
    Dataset
        uint8 images ``(N, C, H, W)``, int64 labels, ``classes`` naming each label.

    Raises
    ------
    DatasetError
        Naming the folder or file: no class folders, a class without images, a file Pillow
        cannot decode, or sizes that differ without ``image_size``; and when Pillow is
        missing.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        try:
            what = f"is {kind_of(folder)}, expected a folder of class folders"
        except FileNotFoundError:
            what = "not found"
        except OSError as exc:  # a loop of links, a name too long...
            what = f"cannot be read ({exc.strerror})"
        raise DatasetError(f"{folder}: {what}")
    size = _pair(image_size)
    image_module = _pillow()
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{folder}: no class folders (expected {folder}/<class>/<image>)")
    wanted = tuple(e.lower() for e in extensions)
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        base = folder / name
        files = sorted(
            p
            for p in base.rglob("*")
            if p.is_file()
            and p.suffix.lower() in wanted
            and not any(part.startswith(".") for part in p.relative_to(base).parts)
        )
        if not files:
            raise DatasetError(
                f"{folder / name}: class {name!r} has no images (endings {', '.join(wanted)})"
            )
        for file in files:
            images.append(_decode(image_module, file, size, grayscale, images))
            labels.append(label)
    stacked = np.stack(images)
    if stacked.ndim == 3:
        stacked = stacked[:, None]
    else:
        stacked = np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))
    return Dataset(
        stacked,
        np.asarray(labels, dtype=np.int64),
        len(classes),
        name=str(folder),
        classes=tuple(classes),
    )


# Pillow's modes of more than 8 bits a channel, which convert("RGB") clips to 255.
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _decode(
    image_module: Any,
    file: Path,
    size: tuple[int, int] | None,
    grayscale: bool,
    earlier: list[np.ndarray],
) -> np.ndarray:
    """One image as uint8 ``(H, W)`` or ``(H, W, 3)``, resized or checked against the
    first image's size."""
    try:
        with image_module.open(file) as image:
            if image.mode in _WIDE_MODES:
                raise DatasetError(
                    f"{file}: a {image.mode} image (more than 8 bits a pixel); converting it "
                    "to 8 bits would clip it, so convert it yourself first"
                )
            converted = image.convert("L" if grayscale else "RGB")
            if size is not None:
                converted = converted.resize((size[1], size[0]), image_module.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8)
    except (OSError, ValueError, image_module.DecompressionBombError) as exc:
        raise DatasetError(f"{file}: cannot be read as an image ({exc})") from None
    if earlier and array.shape != earlier[0].shape:
        raise DatasetError(
            f"{file}: {array.shape[1]}x{array.shape[0]} pixels, but the first image is "
            f"{earlier[0].shape[1]}x{earlier[0].shape[0]}; pass image_size (--image-size) "
            "to resize them all"
        )
    return array
