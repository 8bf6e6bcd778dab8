"""The flat layout: every window is a shift of a flattened, padded image.

Stride 1: output position ``(oh, ow)`` reads padded ``(oh + i * dh, ow + j * dw)``, which in
the image flattened row by row (row length ``Wp``) is position ``oh * Wp + ow`` shifted by
``i * dh * Wp + j * dw``. So each kernel offset's column block is one contiguous slice of the
flat image, copied in long runs instead of row-sized pieces; each output row gets ``Wp - OW``
extra positions that wrap into the next row, dropped afterwards. The adjoint (col2im) is one
sum of shifted slices.

Stride ``(sh, sw)`` > 1 (polyphase): the padded image is split once into its ``sh * sw``
phases, ``phase (p, q) = padded[p::sh, q::sw]``, each ``ceil(Hp / sh) x ceil(Wp / sw)``.
Offset ``(i, j)`` reads phase ``(i * dh % sh, j * dw % sw)`` at ``(oh + i * dh // sh,
ow + j * dw // sw)``: a stride-1 shift of that phase, flattened. One strided copy of the
input (the split) replaces a strided copy per kernel offset (measured, 3x3 convs at batch
64, forward + backward against per-offset strided slices: 32 channels at 28 px 39 -> 24 ms,
64 at 14 px 23 -> 15 ms, 128 at 7 px 20 -> 15 ms). The adjoint folds each phase by shifted
slices and interleaves the phases back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat

from .._inplace import add_into
from .._windows import pad2d
from ._plan import ConvPlan, concat_chunks

__all__ = [
    "columns",
    "flat_cotangent",
    "flat_fold",
    "flat_image",
    "input_grad",
    "margin",
    "offsets",
]


def offsets(plan: ConvPlan) -> list[tuple[int, int]]:
    """Per kernel offset ``(i, j)``: the phase it reads and its flat shift in that phase."""
    (kh, kw), (dh, dw), (sh, sw) = plan.kernel, plan.dilation, plan.stride
    row = plan.row
    return [
        ((i * dh % sh) * sw + j * dw % sw, (i * dh // sh) * row + j * dw // sw)
        for i in range(kh)
        for j in range(kw)
    ]


def _last_shift(plan: ConvPlan) -> int:
    return max(shift for _, shift in offsets(plan))


def _front(plan: ConvPlan) -> int:
    """Stride 1: flat position of the first input element in the padded image."""
    return plan.pads[0] * plan.padded[1] + plan.pads[2]


def flat_image(plan: ConvPlan, x: Any, channel_major: bool) -> Any:
    """The padded image's phases flattened row by row: ``(phases, n, C, span)`` or
    ``(phases, C, n, span)``, with ``span`` long enough for every shift of :func:`offsets`
    (stride 1: one phase, the padded image itself)."""
    xp = plan.xp
    if channel_major:
        x = xp.permute_dims(x, (1, 0, 2, 3))
    (sh, sw), (hph, wph) = plan.stride, plan.phase_size
    # Whole phase rows, enough for the last shift's slice (the bottom padding and more).
    rows = max(hph, -(-(_last_shift(plan) + plan.positions) // wph))
    lead = (x.shape[0], x.shape[1])
    out = xp.zeros((sh * sw, *lead, rows, wph), dtype=x.dtype, device=array_api_compat.device(x))
    if not array_api_compat.is_writeable_array(out):
        return _flat_image_by_concat(plan, x, rows)
    # Each phase's input rows and columns copied into place: one copy of the input, the
    # zeros (padding) written by the allocation.
    top, left = plan.pads[0], plan.pads[2]
    height, width = x.shape[2], x.shape[3]
    for p in range(sh):
        h0 = (p - top) % sh  # first input row in phase row p
        count_h = len(range(h0, height, sh))
        for q in range(sw):
            w0 = (q - left) % sw
            count_w = len(range(w0, width, sw))
            if count_h and count_w:
                r0, c0 = (h0 + top) // sh, (w0 + left) // sw
                out[p * sw + q, :, :, r0 : r0 + count_h, c0 : c0 + count_w] = x[
                    :, :, h0::sh, w0::sw
                ]
    return xp.reshape(out, (sh * sw, *lead, rows * wph))


def _flat_image_by_concat(plan: ConvPlan, x: Any, rows: int) -> Any:
    """:func:`flat_image` for immutable arrays (JAX): pad by concatenation and split the
    phases by a reshape and transpose."""
    xp = plan.xp
    (sh, sw), wph = plan.stride, plan.phase_size[1]
    top, left = plan.pads[0], plan.pads[2]
    lead, height, width = (x.shape[0], x.shape[1]), x.shape[2], x.shape[3]
    padded = pad2d(xp, x, (top, rows * sh - height - top, left, wph * sw - width - left))
    split = xp.reshape(padded, (*lead, rows, sh, wph, sw))
    phases = xp.permute_dims(split, (3, 5, 0, 1, 2, 4))
    return xp.reshape(phases, (sh * sw, *lead, rows * wph))


def columns(plan: ConvPlan, x: Any) -> Any:
    """im2col, channel-major: ``(groups, C/groups * kh * kw, n * positions)``."""
    phases = flat_image(plan, x, channel_major=True)
    length = plan.positions
    windows = plan.xp.stack([phases[p, :, :, o : o + length] for p, o in offsets(plan)], axis=1)
    return plan.xp.reshape(windows, (plan.groups, plan.patch, x.shape[0] * length))


def flat_cotangent(
    plan: ConvPlan, dy: Any, channel_major: bool, margins: tuple[int, int] = (0, 0)
) -> Any:
    """Adjoint layout of the flat output: ``(n, O, OH, OW)`` to ``(O, n, positions)`` or
    ``(n, O, positions)``, zeros at the wrapped positions and ``margins`` zeros (whole rows
    of the layout, see :func:`margin`) before and after each image."""
    xp = plan.xp
    if channel_major:
        dy = xp.permute_dims(dy, (1, 0, 2, 3))
    row, (oh, ow) = plan.row, plan.out_size
    before, after = margins[0] // row, margins[1] // row
    lead = (dy.shape[0], dy.shape[1])
    if row == ow and before == after == 0:  # no wrapped positions, no margins: one copy
        return xp.reshape(dy, (*lead, oh * row))
    out = xp.zeros(
        (*lead, before + oh + after, row), dtype=dy.dtype, device=array_api_compat.device(dy)
    )
    if array_api_compat.is_writeable_array(out):
        out[:, :, before : before + oh, :ow] = dy  # the rest: wrapped positions and margins
        return xp.reshape(out, (*lead, (before + oh + after) * row))
    dy = pad2d(xp, dy, (before, after, 0, row - ow))
    return xp.reshape(dy, (*lead, (before + oh + after) * row))


def flat_fold(plan: ConvPlan, spread: Callable[[int, int, int], Any], margin: int) -> Any:
    """col2im: the sum over kernel offsets of the per-offset gradients ``spread(k, start,
    stop)`` (positions ``start:stop`` of an array ``(..., positions + 2 * margin)`` with zero
    margins) shifted into place; returns the input's gradient ``(..., H, W)``.

    Phase element ``q`` (flat) receives offset ``k``'s gradient from output position
    ``q - shift_k``; the margins make every shift a plain slice: one add per offset.
    """
    if plan.stride != (1, 1):
        return _phase_fold(plan, spread, margin)
    xp = plan.xp
    height, width = plan.padded[0] - plan.pads[0] - plan.pads[1], plan.padded[1]
    span = height * width
    start = margin + _front(plan)  # only the input's rows: the padding's are never needed
    shifts = [shift for _, shift in offsets(plan)]
    total = spread(0, start - shifts[0], start - shifts[0] + span)
    for k, shift in enumerate(shifts[1:], start=1):
        part = spread(k, start - shift, start - shift + span)
        # The first sum is a new array, which the later offsets add into (see _inplace).
        total = total + part if k == 1 else add_into(total, part)
    lead = tuple(total.shape[:-1])
    images = xp.reshape(total, (*lead, height, width))
    return images[..., : width - plan.pads[2] - plan.pads[3]]


def _phase_fold(plan: ConvPlan, spread: Callable[[int, int, int], Any], margin: int) -> Any:
    """:func:`flat_fold` for strides above 1: fold each phase, interleave the phases."""
    xp = plan.xp
    (sh, sw), (hph, wph) = plan.stride, plan.phase_size
    span = hph * wph
    totals: list[Any] = [None] * (sh * sw)
    owned = [False] * (sh * sw)
    for k, (phase, shift) in enumerate(offsets(plan)):
        part = spread(k, margin - shift, margin - shift + span)
        if totals[phase] is None:
            totals[phase] = part  # a view of the column gradient: never written into
        elif not owned[phase]:
            totals[phase], owned[phase] = totals[phase] + part, True
        else:
            totals[phase] = add_into(totals[phase], part)
    some = next(t for t in totals if t is not None)
    lead = tuple(some.shape[:-1])
    # A phase no offset reads (stride above the kernel's extent) gets no gradient.
    zeros = xp.zeros_like(some)
    stacked = xp.stack([zeros if t is None else t for t in totals], axis=0)
    split = xp.reshape(stacked, (sh, sw, *lead, hph, wph))
    rank = len(lead)
    order = (*range(2, 2 + rank), 2 + rank, 0, 3 + rank, 1)  # (..., hph, sh, wph, sw)
    images = xp.reshape(xp.permute_dims(split, order), (*lead, hph * sh, wph * sw))
    top, _, left, _ = plan.pads
    height, width = plan.size
    return images[..., top : top + height, left : left + width]


def margin(plan: ConvPlan) -> int:
    """Zeros on each side of an image's flat cotangent so that :func:`flat_fold` slices,
    rounded up to whole rows (so the cotangent is laid out by one 2-D copy)."""
    if plan.stride != (1, 1):
        phase_span = plan.phase_size[0] * plan.phase_size[1]
        needed = max(0, _last_shift(plan), phase_span - plan.positions)
    else:
        height = plan.padded[0] - plan.pads[0] - plan.pads[1]
        start = _front(plan)
        needed = max(0, _last_shift(plan) - start, start + height * plan.row - plan.positions)
    return -(-needed // plan.row) * plan.row


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
        dcols = kernels_t @ xp.reshape(dyf, (plan.groups, per_out, (stop - start) * dyf.shape[-1]))
        dcols = xp.reshape(dcols, (plan.in_channels, kk, stop - start, dyf.shape[-1]))
        dx = flat_fold(plan, lambda k, a, b: dcols[:, k, :, a:b], edge)
        return xp.permute_dims(dx, (1, 0, 2, 3))

    # Per image: the cotangent's two flat copies, the column gradient, and the fold's
    # running sums and their next values (input-sized; at stride > 1 one per phase, then
    # their stack and its interleaved copy).
    span = plan.positions + 2 * edge
    if plan.stride == (1, 1):
        fold = 2 * plan.in_channels * (plan.padded[0] - plan.pads[0] - plan.pads[1]) * plan.row
    else:
        phases = plan.stride[0] * plan.stride[1]
        fold = 4 * plan.in_channels * plan.phase_size[0] * plan.phase_size[1] * phases
    per_image = (2 * plan.out_channels + plan.patch * plan.groups) * span + fold
    return concat_chunks(plan, dy, per_image, chunk)
