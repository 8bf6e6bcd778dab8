"""Batches on the active backend, and the bundled offline dataset."""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import array_api_compat
import numpy as np

from .. import backends
from .._numbers import flag as as_flag
from .._numbers import integer
from . import transforms
from .files import Dataset, DatasetError, split_last

__all__ = ["DIGITS_MEAN", "DIGITS_STD", "MNIST_MEAN", "MNIST_STD", "DataLoader", "load_digits"]

#: Mean and standard deviation of MNIST's training pixels (after scaling to [0, 1]).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
#: The same for the digits training split of :func:`load_digits` (first 1,437 images).
DIGITS_MEAN, DIGITS_STD = 0.3054, 0.3753


def load_digits(test_size: int = 360) -> tuple[Dataset, Dataset]:
    """scikit-learn's bundled 8x8 digits (1,797 images), offline.

    Parameters
    ----------
    test_size : int, default 360
        The last ``test_size`` images are held out for testing (about 20%): a fixed
        split, the same everywhere without a seed (a shuffled split scores a few points
        higher on this set).

    Returns
    -------
    (Dataset, Dataset)
        Training and test sets, images ``(N, 1, 8, 8)`` uint8: pixel values 0-16 are
        rescaled to 0-255 so they normalise like MNIST's.

    Raises
    ------
    DatasetError
        When scikit-learn is missing (``pip install 'xpnet[digits]'``).
    """
    try:
        # Imported by name: scikit-learn ships no type information.
        sklearn_datasets = importlib.import_module("sklearn.datasets")
    except ImportError:
        raise DatasetError(
            "the digits dataset needs scikit-learn: pip install 'xpnet[digits]'"
        ) from None
    bunch = sklearn_datasets.load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    full = Dataset(images, bunch.target.astype(np.int64), 10, name="digits")
    return split_last(full, test_size)


def _takes_rng(transform: Callable[..., Any]) -> bool:
    """Whether ``transform(images, rng=...)`` binds (True where it cannot be told)."""
    try:
        signature = inspect.signature(transform)
    except (TypeError, ValueError):  # a builtin without one
        return True
    try:
        signature.bind(None, rng=None)
    except TypeError:
        return False
    return True


class DataLoader:
    """Iterate over a dataset in batches placed on the active backend and device.

    Images travel as they are stored (uint8 for image files, which is four times less to
    copy) and are converted on the device: ``(x / 255 - mean) / std`` in ``dtype``.

    Parameters
    ----------
    dataset : Dataset
        Host images and labels.
    batch_size : int, default 64
    shuffle : bool, default False
        Reshuffle every epoch with a generator derived from ``seed`` and the epoch
        number, so a resumed run sees the same order.
    drop_last : bool, default False
        Skip the last incomplete batch.
    seed : int, default 0
    mean, std : float or sequence of float, default 0.0 and 1.0
        Normalisation applied after scaling uint8 pixels to [0, 1]: one value, or one per
        channel (e.g. :data:`CIFAR10_MEAN`, :data:`CIFAR10_STD`).
    dtype : {"float32", "float64"}, default "float32"
    transform : callable, optional
        Augmentation run on the device on each batch after scaling to [0, 1] and before
        ``mean``/``std`` (torchvision's order: constant padding is black), called as
        ``transform(x, rng=generator)`` (see :mod:`xpnet.data.transforms`); the generator is
        derived from ``seed``, the epoch and the batch's position, so a seed gives the same
        batches on every backend and a resumed run sees the same ones.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
        dtype: str = "float32",
        transform: Callable[..., Any] | None = None,
    ) -> None:
        if not (hasattr(dataset, "images") and hasattr(dataset, "labels")):
            raise TypeError(
                "dataset: expected an xpnet.data.Dataset (images and labels), got "
                f"{type(dataset).__name__}"
            )
        flags: dict[str, Any] = {"shuffle": shuffle, "drop_last": drop_last}
        for name, flag in flags.items():
            if as_flag(flag) is None:
                raise TypeError(f"{name}: expected True or False, got {flag!r}")
        if transform is not None and callable(transform) and not _takes_rng(transform):
            raise TypeError(
                "transform: must take a keyword rng (it is called as transform(images, "
                "rng=generator), as xpnet.data.transforms are)"
            )
        size = integer(batch_size)
        if size is None or size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        start = integer(seed)
        if start is None or not 0 <= start < 2**128:  # what NumPy's generators take
            raise ValueError(f"seed: expected an int from 0 to 2**128 - 1, got {seed!r}")
        mean_values = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        std_values = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if mean_values.ndim != 1 or std_values.ndim != 1:
            raise ValueError(f"mean, std: expected numbers or sequences, got {mean!r}, {std!r}")
        if not np.all(np.isfinite(mean_values)):
            raise ValueError(f"mean: expected finite numbers, got {mean!r}")
        if not np.all(std_values > 0) or not np.all(np.isfinite(std_values)):
            raise ValueError(f"std: expected positive numbers, got {std!r}")
        channels = int(dataset.images.shape[1])
        for name, values in (("mean", mean_values), ("std", std_values)):
            if values.size not in (1, channels):
                raise ValueError(
                    f"{name}: expected one value or one per channel ({channels}), got "
                    f"{values.size} values"
                )
        if transform is not None and not callable(transform):
            raise TypeError(f"transform: expected a callable, got {transform!r}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
        self.dataset = dataset
        self.batch_size = size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = start
        # None where the normalisation is the identity (the default).
        identity = np.all(mean_values == 0.0) and np.all(std_values == 1.0)
        self._normalize = (
            None if identity else transforms.Normalize(mean_values.tolist(), std_values.tolist())
        )
        self.dtype = dtype
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's shuffle the next iteration uses (for resuming)."""
        self.epoch = epoch

    def order(self, epoch: int) -> np.ndarray:
        """The example order of an epoch."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def to_backend(
        self, images: np.ndarray, labels: np.ndarray, normalise: bool = True
    ) -> tuple[Any, Any]:
        """Move one host batch to the active backend, scaled and (by default) normalised.

        On a GPU the images travel as stored (uint8 is a quarter of float32's bytes) and are
        converted there; where the device is host memory they are converted before the
        move, in the same float arithmetic, which spares a JIT backend (JAX) compiling the
        conversion for every batch shape.
        """
        y = backends.asarray(np.ascontiguousarray(labels), dtype="int64")
        on_host = backends.device_profile(y).cheap_sync
        x = np.asarray(images, dtype=self.dtype) if on_host else backends.asarray(images)
        xp = array_api_compat.array_namespace(x)
        if not on_host:
            x = xp.astype(x, getattr(xp, self.dtype))
        if images.dtype == np.uint8:
            x = x / 255.0
        if normalise:
            x = self.normalise(x)
        return (backends.asarray(np.ascontiguousarray(x)) if on_host else x), y

    def normalise(self, x: Any) -> Any:
        """``(x - mean) / std`` per channel, in ``x``'s namespace and dtype (the same
        arithmetic on the host and on a device)."""
        return x if self._normalize is None else self._normalize(x)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        order = self.order(self.epoch)
        self.epoch += 1
        stop = len(self) * self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            index = order[start : start + self.batch_size]
            images, labels = self.dataset.images[index], self.dataset.labels[index]
            if self.transform is None:
                yield self.to_backend(images, labels)
                continue
            # As torchvision orders them: augment the [0, 1] images (constant padding is
            # black, not the mean colour), then normalise.
            x, y = self.to_backend(images, labels, normalise=False)
            batch = start // self.batch_size
            generator = np.random.default_rng([self.seed, self.epoch - 1, batch, 1])
            yield self.normalise(self.transform(x, rng=generator)), y
