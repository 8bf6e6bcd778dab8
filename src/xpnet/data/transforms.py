"""Data augmentation on the device: batches never go back to the host.

Each transform takes a batch ``(N, C, H, W)`` on any backend and returns the transformed
batch on the same device. The random choices (crop offsets, which images to flip) are drawn
on the host from a NumPy generator, as every random draw in xpnet is, so one seed gives the
same batches on every backend. The crop and the flip of the whole batch are each one gather
on the device, whose index is built on the host from those draws and sent over (as int64,
with the padding folded in); the images never leave the device and nothing is read back: no
host sync.

>>> import numpy as np, xpnet
>>> from xpnet.data import transforms as T
>>> augment = T.Compose([T.RandomCrop(4, padding=1), T.RandomHorizontalFlip()])
>>> x = xpnet.asarray(np.arange(32.0).reshape(2, 1, 4, 4))
>>> augment(x, rng=0).shape
(2, 1, 4, 4)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from ..functional._validation import namespace_of
from ..random import resolve_rng

__all__ = ["Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip"]


def _check_batch(x: Any, who: str) -> Any:
    xp = namespace_of(input=x)
    if x.ndim != 4:
        raise ValueError(f"{who}: expected a batch (N, C, H, W), got shape {tuple(x.shape)}")
    return xp


def _to_device(xp: Any, host: np.ndarray, like: Any) -> Any:
    return xp.asarray(host, device=array_api_compat.device(like))


def _gather(x: Any, rows: np.ndarray, cols: np.ndarray, fill: float = 0.0) -> Any:
    """``out[n, c, i, j] = x[n, c, rows[n, i], cols[n, j]]`` as one ``take`` on the device,
    with ``fill`` where a row or column index is -1; the index is built on the host from
    the small per-image tables."""
    xp = array_api_compat.array_namespace(x)
    n, c, h, w = (int(s) for s in x.shape)
    out_h, out_w = rows.shape[1], cols.shape[1]
    base = (np.arange(n)[:, None] * c + np.arange(c)[None, :]) * (h * w)  # (N, C)
    index = base[:, :, None, None] + rows[:, None, :, None] * w + cols[:, None, None, :]
    flat = xp.reshape(x, (n * c * h * w,))
    outside = (rows < 0)[:, None, :, None] | (cols < 0)[:, None, None, :]
    if outside.any():
        # One element holding the fill value, appended: every padded position reads it.
        index = np.where(outside, n * c * h * w, index)
        fill_value = xp.full((1,), fill, dtype=x.dtype, device=array_api_compat.device(x))
        flat = xp.concat([flat, fill_value])
    taken = xp.take(flat, _to_device(xp, index.reshape(-1).astype(np.int64), x), axis=0)
    return xp.reshape(taken, (n, c, out_h, out_w))


def _check_fill(xp: Any, x: Any, fill: float) -> None:
    """An integer batch (uint8 images) can only be padded with a value its dtype holds."""
    if xp.isdtype(x.dtype, "integral"):
        info = xp.iinfo(x.dtype)
        if fill != int(fill) or not info.min <= fill <= info.max:
            raise ValueError(
                f"fill: {fill!r} is not a {x.dtype} value ({info.min} to {info.max}); pad "
                "integer images with an integer fill, or convert them to float first"
            )


def _source_index(position: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Which input row (or column) a padded position reads under ``mode``, as
    :func:`xpnet.functional.pad` defines the modes; -1 for constant padding."""
    source: np.ndarray
    if mode == "constant":
        source = np.where((position >= 0) & (position < size), position, -1)
    elif mode == "replicate":
        source = np.clip(position, 0, size - 1)
    elif mode == "circular":
        source = np.mod(position, size)
    else:
        period = 2 * (size - 1)  # reflect: the edge row is not repeated
        folded = np.mod(position, period) if period else np.zeros_like(position)
        source = np.where(folded < size, folded, period - folded)
    return source


def _pair(value: Any, name: str) -> tuple[int, int]:
    values = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(values) != 2 or any(
        isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0 for v in values
    ):
        raise ValueError(f"{name}: expected a non-negative int or a pair of them, got {value!r}")
    return int(values[0]), int(values[1])


class RandomCrop:
    """Crop every image of a batch at its own random position, after optional padding.

    Parameters
    ----------
    size : int or (int, int)
        Output height and width.
    padding : int or (int, int), default 0
        Added to each side (top and bottom, left and right) before cropping:
        ``RandomCrop(32, padding=4)`` is the classic CIFAR augmentation.
    padding_mode : {"constant", "reflect", "replicate", "circular"}, default "constant"
        As :func:`xpnet.functional.pad`.
    fill : float, default 0.0
        The value of constant padding.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        padding: int | tuple[int, int] = 0,
        padding_mode: str = "constant",
        fill: float = 0.0,
    ) -> None:
        self.size = _pair(size, "size")
        if 0 in self.size:
            raise ValueError(f"size: expected positive sizes, got {size!r}")
        self.padding = _pair(padding, "padding")
        if padding_mode not in ("constant", "reflect", "replicate", "circular"):
            raise ValueError(
                "padding_mode: expected 'constant', 'reflect', 'replicate' or 'circular', "
                f"got {padding_mode!r}"
            )
        self.padding_mode = padding_mode
        self.fill = float(fill)

    def __call__(self, x: Any, rng: Any = None) -> Any:
        """Crop ``x`` ``(N, C, H, W)``; ``rng`` as :func:`xpnet.random.resolve_rng`."""
        xp = _check_batch(x, "RandomCrop")
        pad_h, pad_w = self.padding
        n, _, h, w = (int(s) for s in x.shape)
        if (pad_h or pad_w) and self.padding_mode == "constant":
            _check_fill(xp, x, self.fill)
        if self.padding_mode == "reflect" and (pad_h >= h or pad_w >= w):
            raise ValueError(
                f"RandomCrop: reflect padding {self.padding} must be smaller than the image "
                f"({h}, {w})"
            )
        out_h, out_w = self.size
        if out_h > h + 2 * pad_h or out_w > w + 2 * pad_w:
            raise ValueError(
                f"RandomCrop: size {self.size} is larger than the padded image "
                f"({h + 2 * pad_h}, {w + 2 * pad_w})"
            )
        generator = resolve_rng(rng)
        top = generator.integers(0, h + 2 * pad_h - out_h + 1, size=n)
        left = generator.integers(0, w + 2 * pad_w - out_w + 1, size=n)
        # The padding is folded into the gather's index: no padded copy is made.
        rows = _source_index(top[:, None] + np.arange(out_h) - pad_h, h, self.padding_mode)
        cols = _source_index(left[:, None] + np.arange(out_w) - pad_w, w, self.padding_mode)
        return _gather(x, rows, cols, self.fill)

    def __repr__(self) -> str:
        return (
            f"RandomCrop(size={self.size}, padding={self.padding}, "
            f"padding_mode={self.padding_mode!r})"
        )


class _RandomFlip:
    axis_name = ""

    def __init__(self, p: float = 0.5) -> None:
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x: Any, rng: Any = None) -> Any:
        """Flip each image of ``x`` ``(N, C, H, W)`` with probability ``p``."""
        _check_batch(x, type(self).__name__)
        n, _, h, w = (int(s) for s in x.shape)
        flip = resolve_rng(rng).random(n) < self.p
        rows = np.broadcast_to(np.arange(h), (n, h))
        cols = np.broadcast_to(np.arange(w), (n, w))
        if self.axis_name == "width":
            cols = np.where(flip[:, None], w - 1 - cols, cols)
        else:
            rows = np.where(flip[:, None], h - 1 - rows, rows)
        return _gather(x, rows, cols)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Mirror each image left to right with probability ``p`` (default 0.5)."""

    axis_name = "width"


class RandomVerticalFlip(_RandomFlip):
    """Mirror each image top to bottom with probability ``p`` (default 0.5)."""

    axis_name = "height"


class Normalize:
    """``(x - mean) / std`` per channel.

    Parameters
    ----------
    mean, std : float or sequence of float
        One value, or one per channel.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"mean, std: expected numbers or sequences, got {mean!r}, {std!r}")
        if not np.all(self.std > 0):
            raise ValueError(f"std: expected positive values, got {std!r}")
        self._cache: dict[tuple[int, str, str], tuple[Any, Any]] = {}

    def __call__(self, x: Any, rng: Any = None) -> Any:
        """Normalise ``x`` ``(N, C, H, W)`` (``rng`` is ignored: nothing is random)."""
        xp = _check_batch(x, "Normalize")
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"Normalize: expected a floating-point batch, got {x.dtype} (scale integer "
                "images to [0, 1] first, as DataLoader does)"
            )
        channels = int(x.shape[1])
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.size not in (1, channels):
                raise ValueError(
                    f"Normalize: {name} has {values.size} values for {channels} channels"
                )
        mean, std = self._on_device(xp, x)
        return (x - mean) / std

    def _on_device(self, xp: Any, x: Any) -> tuple[Any, Any]:
        if self.mean.size == 1 and self.std.size == 1:
            # One value each: Python numbers, taking the batch's dtype as it is.
            return float(self.mean[0]), float(self.std[0])
        # Moved once per device and dtype, not once per batch.
        key = (id(xp), str(array_api_compat.device(x)), str(x.dtype))
        if key not in self._cache:
            shape = (1, -1, 1, 1)
            mean, std = (
                xp.astype(_to_device(xp, v.reshape(shape), x), x.dtype)
                for v in (self.mean, self.std)
            )
            self._cache[key] = (mean, std)
        return self._cache[key]

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Compose:
    """Apply transforms in order, each drawing from the same generator.

    Parameters
    ----------
    transforms : sequence of callables
        Each called as ``t(x, rng=rng)``.
    """

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"transforms: expected callables, got {t!r}")

    def __call__(self, x: Any, rng: Any = None) -> Any:
        """Run every transform on ``x``."""
        generator = resolve_rng(rng)
        for t in self.transforms:
            x = t(x, rng=generator)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"
