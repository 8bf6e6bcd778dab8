"""The data a command works on: the bundled digits, MNIST, CIFAR, IDX files or a folder of
class folders, as loaders."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .. import data
from ._common import CommandError


def _source_kind(source: str) -> str:
    return "images" if source.startswith(("images:", "folder:")) else source


def _check_data_arguments(args: argparse.Namespace) -> None:
    if args.image_folder is None and (args.image_size is not None or args.grayscale):
        raise CommandError("--image-size and --grayscale apply to --image-folder")
    if args.image_folder is not None:
        others = [
            flag
            for flag, value in (
                ("--images", args.images),
                ("--labels", args.labels),
                ("--dataset", args.dataset),
                ("--data-dir", args.data_dir),
                ("--num-classes", args.num_classes),
            )
            if value is not None
        ]
        if others or args.download:
            given = ", ".join(others + (["--download"] if args.download else []))
            raise CommandError(f"--image-folder names the data by itself; drop {given}")
        return
    if args.num_classes is not None and args.labels is None:
        raise CommandError("--num-classes applies to --labels (MNIST and digits have 10)")
    if args.images is not None or args.labels is not None:
        if args.dataset is not None or args.data_dir is not None:
            raise CommandError("give either --images/--labels or --dataset/--data-dir, not both")
        if args.images is None:
            raise CommandError("--labels needs --images")
        if args.download:
            raise CommandError("--download is for --dataset mnist, cifar10 or cifar100")
        return
    if args.data_dir is not None:
        if args.dataset == "digits":
            raise CommandError("--data-dir is for --dataset mnist, cifar10 or cifar100")
        args.dataset = args.dataset or "mnist"
    if args.download and args.dataset not in _FILE_DATASETS:
        raise CommandError("--download is for --dataset mnist, cifar10 or cifar100")
    if args.dataset in _FILE_DATASETS and args.test_size is not None:
        raise CommandError(
            f"--test-size applies to --images and digits; {_TITLES[args.dataset]} has its own split"
        )


_FILE_DATASETS = ("mnist", "cifar10", "cifar100")
_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def _data_folder(args: argparse.Namespace) -> Path | None:
    """``--data-dir``, else where the dataset is found, else (``--download``) the cache."""
    if args.data_dir is not None:
        return Path(args.data_dir)
    found = data.find_dataset(args.dataset)
    if found is None and getattr(args, "download", False):
        return data.cache_dir(args.dataset)
    return found


def data_origin(args: argparse.Namespace) -> dict[str, str]:
    """Where the data just loaded lives, as absolute paths: saved in a checkpoint so that
    ``evaluate`` and ``predict`` find it again from any folder."""
    if args.image_folder is not None:
        return {"image_folder": str(Path(args.image_folder).expanduser().resolve())}
    if args.images is not None:
        origin = {"images": str(Path(args.images).resolve())}
        if args.labels is not None:
            origin["labels"] = str(Path(args.labels).resolve())
        return origin
    if args.dataset in _FILE_DATASETS:
        folder = _data_folder(args)
        return {"data_dir": str(folder.resolve())} if folder is not None else {}
    return {}


def _load_data(
    args: argparse.Namespace, *, whole_file: bool = False
) -> tuple[data.Dataset, data.Dataset, str]:
    """Training and test sets and a name for the source (saved in checkpoints)."""
    _check_data_arguments(args)
    if args.image_folder is not None:
        return _load_folder(args, whole_file)
    if args.images is not None:
        source = f"images:{Path(args.images).name}"
        if args.labels is None:
            images = data.load_images(args.images)
            full = data.Dataset(images, np.zeros(len(images), np.int64), 1, name=args.images)
        else:
            full = data.load_images_labels(args.images, args.labels, args.num_classes)
        if whole_file and args.test_size is None:
            return full, full, source
        test_size = args.test_size if args.test_size is not None else max(1, len(full) // 5)
        if len(full) < 2:
            raise CommandError(f"{args.images}: needs at least 2 images to split, has {len(full)}")
        if test_size >= len(full):
            raise CommandError(
                f"--test-size: {test_size} leaves no training images out of {len(full)}"
            )
        train, test = data.split_last(full, test_size)
        return train, test, source
    dataset = args.dataset or "digits"
    if dataset in _FILE_DATASETS:
        folder = _data_folder(args)
        if folder is None:
            where = (
                "https://ossci-datasets.s3.amazonaws.com/mnist/"
                if dataset == "mnist"
                else "https://www.cs.toronto.edu/~kriz/cifar.html (the binary version)"
            )
            raise CommandError(
                f"{dataset}: no data directory found; pass --data-dir or set "
                f"XPNET_{dataset.upper()}_DIR, or add --download to fetch the official files "
                f"(from {where}) into {data.cache_dir(dataset)}"
            )
        download = getattr(args, "download", False)
        if dataset == "mnist":
            train, test = data.load_mnist(folder, download=download)
        else:
            train, test = data.load_cifar(folder, dataset, download=download)
        return train, test, dataset
    test_size = args.test_size if args.test_size is not None else 360
    if test_size >= 1797:
        raise CommandError(f"--test-size: digits has 1,797 images, cannot hold out {test_size}")
    train, test = data.load_digits(test_size)
    return train, test, "digits"


def _load_folder(
    args: argparse.Namespace, whole_file: bool
) -> tuple[data.Dataset, data.Dataset, str]:
    """``--image-folder``: its images in a fixed shuffled order (the folder lists them class
    by class), the last ``--test-size`` (default 20%) held out."""
    folder = data.load_image_folder(
        args.image_folder, image_size=args.image_size, grayscale=args.grayscale
    )
    height, width = (int(n) for n in folder.images.shape[2:])
    if height != width:
        raise CommandError(
            f"--image-folder: the images are {width}x{height} pixels; the models take square "
            "images: pass --image-size N to resize them"
        )
    source = f"folder:{Path(args.image_folder).expanduser().resolve().name}"
    order = np.random.default_rng(0).permutation(len(folder))
    mixed = data.Dataset(
        folder.images[order], folder.labels[order], folder.num_classes, folder.name,
        classes=folder.classes,
    )  # fmt: skip
    if whole_file and args.test_size is None:
        return mixed, mixed, source
    if len(mixed) < 2:
        raise CommandError(
            f"{args.image_folder}: needs at least 2 images to split, has {len(mixed)}"
        )
    test_size = args.test_size if args.test_size is not None else max(1, len(mixed) // 5)
    if test_size >= len(mixed):
        raise CommandError(
            f"--test-size: {test_size} leaves no training images out of {len(mixed)}"
        )
    train, test = data.split_last(mixed, test_size)
    return train, test, source


def _channel_statistics(images: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1], in two
    passes over chunks (no float64 copy of the whole set)."""
    count = images.shape[0] * images.shape[2] * images.shape[3]
    total = sum(
        images[i : i + chunk].sum(axis=(0, 2, 3), dtype=np.float64)
        for i in range(0, len(images), chunk)
    )
    mean = np.asarray(total) / 255.0 / count
    squares = sum(
        (((images[i : i + chunk] / 255.0) - mean[:, None, None]) ** 2).sum(axis=(0, 2, 3))
        for i in range(0, len(images), chunk)
    )
    std = np.sqrt(np.asarray(squares) / count)
    return mean, np.maximum(std, 1e-3)  # a constant channel must not blow up


def _normalisation(source: str, train: data.Dataset | None = None) -> tuple[Any, Any]:
    """Mean and standard deviation: one value, or one per channel for CIFAR and image
    folders (measured on the training images)."""
    if source.startswith("folder:") and train is not None:
        mean, std = _channel_statistics(train.images)
        return tuple(float(m) for m in mean), tuple(float(v) for v in std)
    if source == "digits":
        return data.DIGITS_MEAN, data.DIGITS_STD
    if source == "cifar10":
        return data.CIFAR10_MEAN, data.CIFAR10_STD
    if source == "cifar100":
        return data.CIFAR100_MEAN, data.CIFAR100_STD
    return data.MNIST_MEAN, data.MNIST_STD


def _loader(
    dataset: data.Dataset,
    batch_size: int,
    norm: tuple[float, float],
    *,
    shuffle: bool,
    seed: int = 0,
    transform: Any = None,
) -> data.DataLoader:
    return data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        mean=norm[0],
        std=norm[1],
        transform=transform,
    )
