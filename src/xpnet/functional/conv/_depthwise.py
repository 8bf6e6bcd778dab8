"""One input channel per group (depthwise): multiply-accumulate pullbacks.

The forward pass stays the column GEMM of :mod:`._gemm` (as fast as the alternatives); the
pullback multiplies and accumulates over the kernel offsets' window slices instead of a tiny
GEMM per group and col2im: measured 1.6x faster forward+backward (64 channels, 14 pixels).
"""

from __future__ import annotations

import math
from typing import Any

from .._windows import crop2d, fold_windows, pad2d, window_slices
from . import _flat
from ._plan import ConvPlan, chunks, concat_chunks

__all__ = ["input_grad", "weight_grad"]


def _windows(plan: ConvPlan, x: Any) -> list[Any]:
    """Per kernel offset, ``(n, C, 1, positions)`` (stride 1) or ``(n, C, 1, OH, OW)``."""
    xp = plan.xp
    if plan.flat:
        phases = _flat.flat_image(plan, x, channel_major=False)
        length = plan.positions
        return [
            xp.expand_dims(phases[p, :, :, o : o + length], axis=2) for p, o in _flat.offsets(plan)
        ]
    padded = pad2d(xp, x, plan.pads)
    slices = window_slices(padded, plan.kernel, plan.stride, plan.dilation, plan.out_size)
    return [xp.expand_dims(s, axis=2) for s in slices]


def _taps(plan: ConvPlan, weight: Any, ndim: int) -> list[Any]:
    """Per kernel offset, the taps ``(groups, multiplier)`` followed by ``ndim`` unit axes
    (to broadcast against window slices)."""
    xp = plan.xp
    multiplier = plan.out_channels // plan.groups
    taps = xp.reshape(weight, (plan.groups, multiplier, plan.patch, *([1] * ndim)))
    return [taps[:, :, k, ...] for k in range(plan.patch)]


def weight_grad(plan: ConvPlan, x: Any, dy: Any, saved: Any) -> Any:
    """dW: per kernel offset, the sum of window slice times dY."""
    xp = plan.xp
    multiplier = plan.out_channels // plan.groups
    total = None
    for start, stop in chunks(plan, x, 3 * plan.out_channels * plan.positions):
        n, dy_chunk = stop - start, dy[start:stop, ...]
        if plan.flat:
            dy_chunk = _flat.flat_cotangent(plan, dy_chunk, channel_major=False)
        dy_chunk = xp.reshape(dy_chunk, (n, plan.groups, multiplier, math.prod(dy_chunk.shape[2:])))
        parts = [
            xp.sum(
                xp.vecdot(
                    xp.reshape(w, (n, plan.groups, 1, math.prod(w.shape[2:]))), dy_chunk, axis=-1
                ),
                axis=0,
            )
            for w in _windows(plan, x[start:stop, ...])
        ]
        part = xp.stack(parts, axis=-1)
        total = part if total is None else total + part
    return xp.reshape(total, (plan.out_channels, 1, *plan.kernel))


def input_grad(plan: ConvPlan, weight: Any, dy: Any) -> Any:
    """dX: per offset, dY times the tap, folded back (a depthwise transposed convolution)."""
    xp = plan.xp
    multiplier = plan.out_channels // plan.groups
    if plan.flat:
        edge = _flat.margin(plan)
        taps = _taps(plan, weight, 1)

        def chunk(start: int, stop: int) -> Any:
            dyf = _flat.flat_cotangent(plan, dy[start:stop, ...], False, margins=(edge, edge))
            dyf = xp.reshape(dyf, (stop - start, plan.groups, multiplier, dyf.shape[-1]))
            dx = _flat.flat_fold(plan, lambda k, a, b: dyf[..., a:b] * taps[k], edge)
            return xp.sum(dx, axis=2) if multiplier > 1 else dx[:, :, 0, ...]

        per_image = 3 * plan.out_channels * (plan.positions + 2 * edge)
        return concat_chunks(plan, dy, per_image, chunk)
    # Stride > 1: per-offset 2-D gradients folded by zero-stuffing, padding and adding.
    taps = _taps(plan, weight, 2)

    def strided_chunk(start: int, stop: int) -> Any:
        dy5 = xp.reshape(dy[start:stop, ...], (stop - start, plan.groups, multiplier,
                                               *plan.out_size))  # fmt: skip
        dcols = xp.stack([xp.sum(dy5 * tap, axis=2) for tap in taps], axis=2)
        dpadded = fold_windows(xp, dcols, plan.padded, plan.kernel, plan.stride, plan.dilation)
        return crop2d(dpadded, plan.pads)

    # Per image: a product per offset and their stack, and the fold's padded planes.
    kk = plan.kernel[0] * plan.kernel[1]
    per_image = (2 * kk + 1) * plan.out_channels * plan.out_size[0] * plan.out_size[1] + (
        5 * plan.in_channels * plan.padded[0] * plan.padded[1]
    )
    return concat_chunks(plan, dy, per_image, strided_chunk)
