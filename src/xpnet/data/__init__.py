"""Datasets (IDX, MNIST, CIFAR, image folders, ``.npz``, scikit-learn's digits), their
downloads, the batch iterator and on-device augmentation (:mod:`xpnet.data.transforms`)."""

import os
from pathlib import Path

from . import transforms
from ._download import DOWNLOADS, Download, download
from .cifar import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    CIFAR_LAYOUTS,
    load_cifar,
    load_cifar_file,
    locate_cifar,
)
from .files import (
    MNIST_MD5,
    Dataset,
    DatasetError,
    load_idx,
    load_images,
    load_images_labels,
    load_mnist,
    load_npz,
    md5sum,
    split_last,
)
from .folder import IMAGE_EXTENSIONS, load_image_folder
from .loader import DIGITS_MEAN, DIGITS_STD, MNIST_MEAN, MNIST_STD, DataLoader, load_digits

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR_LAYOUTS",
    "DIGITS_MEAN",
    "DIGITS_STD",
    "DOWNLOADS",
    "IMAGE_EXTENSIONS",
    "MNIST_MD5",
    "MNIST_MEAN",
    "MNIST_STD",
    "DataLoader",
    "Dataset",
    "DatasetError",
    "Download",
    "cache_dir",
    "download",
    "find_dataset",
    "find_mnist",
    "load_cifar",
    "load_cifar_file",
    "load_digits",
    "load_idx",
    "load_image_folder",
    "load_images",
    "load_images_labels",
    "load_mnist",
    "load_npz",
    "md5sum",
    "split_last",
    "transforms",
]


def find_mnist(start: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate an MNIST directory: :func:`find_dataset` for ``"mnist"``."""
    return find_dataset("mnist", start)


def cache_dir(dataset: str) -> Path:
    """Where a download goes when no folder is named: ``$XDG_CACHE_HOME/xpnet/<dataset>``,
    by default ``~/.cache/xpnet/<dataset>``."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "xpnet" / dataset


def _holds(folder: Path, dataset: str) -> bool:
    if dataset == "mnist":
        return any((folder / name).is_file() for name in _T10K_IMAGES)
    try:
        locate_cifar(folder, CIFAR_LAYOUTS[dataset])  # the places load_cifar looks
    except DatasetError:
        return False
    return True


def find_dataset(dataset: str, start: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate the folder holding a dataset's files.

    Parameters
    ----------
    dataset : {"mnist", "cifar10", "cifar100"}
    start : path-like, optional
        Where to start looking (default: the current directory).

    Returns
    -------
    Path or None
        ``$XPNET_<DATASET>_DIR`` (e.g. ``XPNET_MNIST_DIR``) when set, even if it does not
        exist, so that a wrong setting gives an error naming it; else the first
        ``<parent>/shared/data/<dataset>`` holding the files, for ``start`` and each folder
        above it (so ``../shared/data/mnist`` from a checkout); else :func:`cache_dir` when
        a download put the files there; else ``None``.
    """
    if dataset != "mnist" and dataset not in CIFAR_LAYOUTS:
        raise ValueError(f"dataset: expected 'mnist', 'cifar10' or 'cifar100', got {dataset!r}")
    env = os.environ.get(f"XPNET_{dataset.upper()}_DIR", "").strip()
    if env:
        return Path(env)
    base = (Path(start) if start is not None else Path.cwd()).resolve()
    for folder in (base, *base.parents):
        candidate = folder.parent / "shared" / "data" / dataset
        if _holds(candidate, dataset):
            return candidate
    cached = cache_dir(dataset)
    return cached if _holds(cached, dataset) else None


_T10K_IMAGES = ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")
