"""The flat layout (stride 1): every window is a shift of the flattened, padded image.

Output position ``(oh, ow)`` reads padded ``(oh + i * dh, ow + j * dw)``, which in the image
flattened row by row (row length ``Wp``) is position ``oh * Wp + ow`` shifted by
``i * dh * Wp + j * dw``. So each kernel offset's column block is one contiguous slice of the
flat image, copied in long runs instead of row-sized pieces; each output row gets ``Wp - OW``
extra positions that wrap into the next row, dropped afterwards. The adjoint (col2im) is one
sum of shifted slices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._windows import _pad_axis
from ._plan import ConvPlan, concat_chunks

__all__ = ["columns", "flat_cotangent", "flat_fold", "flat_image", "input_grad", "margin"]


def offsets(plan: ConvPlan) -> list[int]:
    """Flat shift of each kernel offset ``(i, j)``: ``i * dh * Wp + j * dw``."""
    (kh, kw), (dh, dw), row = plan.kernel, plan.dilation, plan.padded[1]
    return [i * dh * row + j * dw for i in range(kh) for j in range(kw)]


def _front(plan: ConvPlan) -> int:
    """Flat position of the first input element in the padded image."""
    return plan.pads[0] * plan.padded[1] + plan.pads[2]


def flat_image(plan: ConvPlan, x: Any, channel_major: bool) -> Any:
    """The padded image flattened row by row: ``(n, C, span)`` or ``(C, n, span)``, with
    ``span`` long enough for every window shift of :func:`offsets`."""
    xp = plan.xp
    top, _, left, right = plan.pads
    n, channels, height = x.shape[0], x.shape[1], x.shape[2]
    row = plan.padded[1]
    # Each row followed by its right padding and the next row's left padding.
    x = _pad_axis(xp, x, -1, 0, left + right, 0.0)
    flat = xp.reshape(x, (n, channels, height * row))
    if channel_major:
        flat = xp.permute_dims(flat, (1, 0, 2))
    front = top * row + left
    back = offsets(plan)[-1] + plan.positions - front - height * row
    return _pad_axis(xp, flat, -1, front, max(back, 0), 0.0)


def columns(plan: ConvPlan, x: Any) -> Any:
    """im2col, channel-major: ``(groups, C/groups * kh * kw, n * positions)``."""
    flat = flat_image(plan, x, channel_major=True)
    length = plan.positions
    windows = plan.xp.stack([flat[..., o : o + length] for o in offsets(plan)], axis=1)
    return plan.xp.reshape(windows, (plan.groups, plan.patch, x.shape[0] * length))


def flat_cotangent(
    plan: ConvPlan, dy: Any, channel_major: bool, margins: tuple[int, int] = (0, 0)
) -> Any:
    """Adjoint layout of the flat output: ``(n, O, OH, OW)`` to ``(O, n, positions)`` or
    ``(n, O, positions)``, zeros at the wrapped positions and ``margins`` zeros before and
    after each image."""
    xp = plan.xp
    n, ow = dy.shape[0], plan.out_size[1]
    dy = _pad_axis(xp, dy, -1, 0, plan.row - ow, 0.0)  # zeros at the wrapped positions
    dy = xp.reshape(dy, (n, plan.out_channels, plan.positions))
    if channel_major:
        # Reshaping the transposed view copies it into channel-major order (NumPy's concat
        # would keep the view's memory order, and the GEMM's reshape would copy again).
        dy = xp.reshape(xp.permute_dims(dy, (1, 0, 2)), (plan.out_channels, -1))
        dy = xp.reshape(dy, (plan.out_channels, n, plan.positions))
    return _pad_axis(xp, dy, -1, *margins, 0.0)


def flat_fold(plan: ConvPlan, spread: Callable[[int, int, int], Any], margin: int) -> Any:
    """col2im for stride 1: the sum over kernel offsets of the per-offset gradients
    ``spread(k, start, stop)`` (positions ``start:stop`` of an array ``(..., positions + 2 *
    margin)`` with zero margins) shifted into place.

    Input element ``(h, w)`` sits at flat position ``front + h * Wp + w``; the gradient of
    offset ``k`` reaches it from position ``front + h * Wp + w - offsets[k]``. The margins
    make every shift a plain slice: one add per offset.
    """
    xp = plan.xp
    height, width = plan.padded[0] - plan.pads[0] - plan.pads[1], plan.padded[1]
    span = height * width
    start = margin + _front(plan)
    shifts = offsets(plan)
    total = spread(0, start, start + span)
    for k, shift in enumerate(shifts[1:], start=1):
        total = total + spread(k, start - shift, start - shift + span)
    lead = tuple(total.shape[:-1])
    images = xp.reshape(total, (*lead, height, width))
    return images[..., : width - plan.pads[2] - plan.pads[3]]


def margin(plan: ConvPlan) -> int:
    """Zeros on each side of an image's flat cotangent so that :func:`flat_fold` slices."""
    height = plan.padded[0] - plan.pads[0] - plan.pads[1]
    start = _front(plan)
    return max(0, offsets(plan)[-1] - start, start + height * plan.padded[1] - plan.positions)


def kernels(plan: ConvPlan, weight: Any) -> Any:
    """The weight as one matrix per group: ``(groups, O / groups, C / groups * kh * kw)``."""
    return plan.xp.reshape(weight, (plan.groups, plan.out_channels // plan.groups, plan.patch))


def input_grad(plan: ConvPlan, weight: Any, dy: Any) -> Any:
    """dX: the columns' gradient ``W^T @ dY``, folded back by :func:`flat_fold`."""
    xp = plan.xp
    kk = plan.kernel[0] * plan.kernel[1]
    edge = margin(plan)
    kernels_t = xp.matrix_transpose(kernels(plan, weight))
    per_out = plan.out_channels // plan.groups

    def chunk(start: int, stop: int) -> Any:
        dyf = flat_cotangent(plan, dy[start:stop, ...], True, margins=(edge, edge))
        dcols = kernels_t @ xp.reshape(dyf, (plan.groups, per_out, -1))
        dcols = xp.reshape(dcols, (plan.in_channels, kk, stop - start, -1))
        dx = flat_fold(plan, lambda k, a, b: dcols[:, k, :, a:b], edge)
        return xp.permute_dims(dx, (1, 0, 2, 3))

    # Per image: the cotangent's two flat copies, the column gradient, and the fold's
    # running sum and its next value (input-sized, row length Wp).
    span = plan.positions + 2 * edge
    unpadded_height = plan.padded[0] - plan.pads[0] - plan.pads[1]
    per_image = (2 * plan.out_channels + plan.patch * plan.groups) * span + (
        2 * plan.in_channels * unpadded_height * plan.padded[1]
    )
    return concat_chunks(plan, dy, per_image, chunk)
