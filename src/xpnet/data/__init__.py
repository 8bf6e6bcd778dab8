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
    "MNIST_MD5",
    "MNIST_MEAN",
    "MNIST_STD",
    "DataLoader",
    "Dataset",
    "DatasetError",
    "Download",
    "download",
    "find_mnist",
    "load_cifar",
    "load_cifar_file",
    "load_digits",
    "load_idx",
    "load_images",
    "load_images_labels",
    "load_mnist",
    "load_npz",
    "md5sum",
    "split_last",
    "transforms",
]


def find_mnist(start: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate an MNIST directory.

    Parameters
    ----------
    start : path-like, optional
        Where to start looking (default: the current directory).

    Returns
    -------
    Path or None
        ``$XPNET_MNIST_DIR`` when set (even if it does not exist, so that a wrong setting
        gives an error naming it); else the first ``<parent>/shared/data/mnist`` holding
        ``t10k-images-idx3-ubyte[.gz]``, for ``start`` and each folder above it (so
        ``../shared/data/mnist`` from a checkout); else ``None``.
    """
    env = os.environ.get("XPNET_MNIST_DIR", "").strip()
    if env:
        return Path(env)
    base = (Path(start) if start is not None else Path.cwd()).resolve()
    for folder in (base, *base.parents):
        candidate = folder.parent / "shared" / "data" / "mnist"
        if any((candidate / name).is_file() for name in _T10K_IMAGES):
            return candidate
    return None


_T10K_IMAGES = ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")
