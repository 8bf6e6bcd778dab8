"""Batch normalisation's training passes for NumPy arrays, compiled by Numba (imported only
through :func:`xpnet.functional._numba.load`).

Each kernel does the channels ``[start, stop)`` of a C-contiguous ``(N, C, S)`` array (S the
positions per sample), so threads running shares of channels at once never write the same
element, and releases the GIL for that. Statistics and sums accumulate in float64. Their
definition is :func:`xpnet.functional.batch_norm`'s standard path, which the tests hold them
to.
"""

from __future__ import annotations

import math
from typing import Any

from numba import njit, uintp

__all__ = ["backward", "forward"]


@njit(cache=True, nogil=True)
def forward(
    x: Any,
    weight: Any,
    bias: Any,
    eps: float,
    y: Any,
    stats: Any,
    start: int,
    stop: int,
) -> None:
    """Normalise channels ``start:stop`` of ``x`` into ``y`` with the batch's mean and
    biased variance, then ``weight`` and ``bias`` (each ``(C,)``, or empty for none); write
    each channel's mean, variance and ``1 / sqrt(variance + eps)`` into ``stats`` ``(3, C)``
    (float64). Three passes per channel: the mean, the centred squares, the output."""
    n, channels, size = x.shape
    source, target = x.reshape(-1), y.reshape(-1)
    count = n * size
    for c in range(start, stop):
        total = 0.0
        for b in range(n):
            first = uintp((b * channels + c) * size)
            for q in range(uintp(size)):
                total += source[first + q]
        mean = total / count
        squares = 0.0
        for b in range(n):
            first = uintp((b * channels + c) * size)
            for q in range(uintp(size)):
                d = source[first + q] - mean
                squares += d * d
        var = squares / count
        inv_std = 1.0 / math.sqrt(var + eps)
        scale = inv_std * weight[c] if weight.size else inv_std
        shift = bias[c] if bias.size else 0.0
        for b in range(n):
            first = uintp((b * channels + c) * size)
            for q in range(uintp(size)):
                target[first + q] = (source[first + q] - mean) * scale + shift
        stats[0, c], stats[1, c], stats[2, c] = mean, var, inv_std


@njit(cache=True, nogil=True)
def backward(
    x: Any,
    dy: Any,
    stats: Any,
    weight: Any,
    dx: Any,
    sums: Any,
    start: int,
    stop: int,
) -> None:
    """The pullback of :func:`forward` (training: the statistics depend on ``x``) for
    channels ``start:stop``: ``dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat))``, and
    per channel ``sum(dy)`` and ``sum(dy * xhat)`` into ``sums`` ``(2, C)`` (float64), the
    bias's and the weight's gradients. Two passes per channel."""
    n, channels, size = x.shape
    image, grad, target = x.reshape(-1), dy.reshape(-1), dx.reshape(-1)
    count = n * size
    for c in range(start, stop):
        mean, inv_std = stats[0, c], stats[2, c]
        sum_dy = 0.0
        sum_dy_centred = 0.0
        for b in range(n):
            first = uintp((b * channels + c) * size)
            for q in range(uintp(size)):
                g = grad[first + q]
                sum_dy += g
                sum_dy_centred += g * (image[first + q] - mean)
        sum_dy_xhat = sum_dy_centred * inv_std
        scale = inv_std * weight[c] if weight.size else inv_std
        mean_dy = sum_dy / count
        factor = sum_dy_xhat * scale * inv_std / count
        for b in range(n):
            first = uintp((b * channels + c) * size)
            for q in range(uintp(size)):
                target[first + q] = (grad[first + q] - mean_dy) * scale - (
                    image[first + q] - mean
                ) * factor
        sums[0, c], sums[1, c] = sum_dy, sum_dy_xhat
