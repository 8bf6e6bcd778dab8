"""The strided layout: windows by 2-D strided slices, one per kernel offset.

Used for narrow images, where the flat layout's wrapped positions (of the image, or at
strides above 1 of its phases) cost more than they save. Its forward pass and weight
gradient are the column GEMM of :mod:`._gemm`; its input gradient zero-stuffs, pads and
adds each offset's gradient back.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from .._windows import crop2d, extract_windows, fold_windows, pad2d
from . import _flat
from ._plan import ConvPlan, concat_chunks

__all__ = ["column_grad", "columns", "input_grad"]


def columns(plan: ConvPlan, x: Any) -> Any:
    """im2col by 2-D strided slices, channel-major: ``(groups, C/groups * kh * kw,
    n * OH * OW)``."""
    xp = plan.xp
    channels, n, height, width = x.shape[1], x.shape[0], x.shape[2], x.shape[3]
    # (C, n, H, W), laid out in that order: reshaping the transposed view copies it once
    # (input-sized), which makes the window slices below contiguous runs (measured: LeNet's
    # second conv builds its columns 8x faster than from the strided view).
    channel_major = xp.reshape(
        xp.reshape(xp.permute_dims(x, (1, 0, 2, 3)), (channels, n * height * width)),
        (channels, n, height, width),
    )
    padded = pad2d(xp, channel_major, plan.pads)
    windows = extract_windows(
        xp, padded, plan.kernel, plan.stride, plan.dilation, plan.out_size, window_axis=1
    )  # (C, kh * kw, n, OH, OW)
    return xp.reshape(windows, (plan.groups, plan.patch, n * plan.positions))


def column_grad(plan: ConvPlan, kernels_t: Any, dy: Any) -> Any:
    """The columns' gradient ``W^T @ dY`` of a chunk of the cotangent ``(n, O, OH, OW)``,
    channel-major: ``(groups, C/groups * kh * kw, n * OH * OW)``."""
    xp = plan.xp
    dy_cm = xp.reshape(
        xp.permute_dims(dy, (1, 0, 2, 3)),
        (plan.groups, plan.out_channels // plan.groups, dy.shape[0] * math.prod(plan.out_size)),
    )
    return kernels_t @ dy_cm


def input_grad(plan: ConvPlan, weight: Any, dy: Any) -> Any:
    """dX: the columns' gradient ``W^T @ dY`` folded back onto the input (col2im)."""
    if plan.stride == (1, 1):
        # The flat fold (one sum of shifted slices) beats per-offset pad-and-add even when
        # the wrapped positions widen its GEMM (measured 3x3, 64 ch at 14 px and 128 ch at
        # 7 px: the pullback 1.25x and 1.13x faster).
        return _flat.input_grad(replace(plan, flat_anyway=True), weight, dy)
    xp = plan.xp
    kk = plan.kernel[0] * plan.kernel[1]
    oh, ow = plan.out_size
    kernels_t = xp.matrix_transpose(_flat.kernels(plan, weight))

    def chunk(start: int, stop: int) -> Any:
        dcols = column_grad(plan, kernels_t, dy[start:stop, ...])
        dcols = xp.reshape(dcols, (plan.in_channels, kk, stop - start, oh, ow))
        dpadded = fold_windows(
            xp, dcols, plan.padded, plan.kernel, plan.stride, plan.dilation, window_axis=1
        )
        return xp.permute_dims(crop2d(dpadded, plan.pads), (1, 0, 2, 3))

    # Per image: the cotangent's channel-major copy, the column gradient, and the fold's
    # zero-stuffed, padded and summed planes (up to five padded-input-sized arrays).
    padded_input = plan.in_channels * plan.padded[0] * plan.padded[1]
    per_image = (plan.out_channels + plan.groups * plan.patch) * plan.positions
    return concat_chunks(plan, dy, per_image + 5 * padded_input, chunk)
