"""2-D convolution (im2col + one GEMM per group) and its pullback."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..config import get_workspace_bytes
from ._autodiff import Pullback, defvjp
from ._validation import (
    as_pair,
    check_float,
    check_ndim,
    check_same_dtype,
    check_shape,
    namespace_of,
)
from ._windows import (
    _pad_axis,
    crop2d,
    extract_windows,
    fold_windows,
    pad2d,
    sliding_output_size,
    window_slices,
)

__all__ = ["conv2d"]


@dataclass(frozen=True)
class _ConvPlan:
    """Everything the forward and backward passes need, checked once."""

    xp: Any
    unbatched: bool
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    padded: tuple[int, int]
    out_size: tuple[int, int]
    flat_anyway: bool = False  # flat layout even where the forward would not use it

    @property
    def patch(self) -> int:
        """Length of one group's flattened receptive field, ``C/groups * kh * kw``."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]

    @property
    def flat(self) -> bool:
        """Stride 1: windows are shifts of the flattened image (see :func:`_flat_columns`)."""
        wrapped = self.padded[1] - self.out_size[1]
        return self.stride == (1, 1) and (
            # depthwise: the flat multiply-accumulate pullback needs this layout
            self.flat_anyway
            or self.depthwise
            or wrapped * _MAX_WRAPPED_FRACTION <= self.out_size[1]
        )

    @property
    def depthwise(self) -> bool:
        """One input channel per group: multiply-accumulate instead of GEMMs."""
        return self.in_channels == self.groups > 1

    @property
    def row(self) -> int:
        """Column positions per output row: the padded width for flat columns, else OW."""
        return self.padded[1] if self.flat else self.out_size[1]

    @property
    def positions(self) -> int:
        """Column positions per image."""
        return self.out_size[0] * self.row


def _resolve_padding(
    padding: Any, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"padding: 'same' needs stride 1 (as in torch), got stride {stride}"
                )
            pads = []
            for k, d in zip(kernel, dilation, strict=True):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]  # torch puts the odd one at the end
            return (pads[0], pads[1], pads[2], pads[3])
        raise ValueError(f"padding: expected an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = as_pair("padding", padding, minimum=0)
    return (ph, ph, pw, pw)


def _plan(
    x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any
) -> _ConvPlan:
    xp = namespace_of(input=x, weight=weight, bias=bias)
    check_ndim("input", x, (3, 4), "(N, C, H, W) or (C, H, W)")
    check_ndim("weight", weight, (4,), "(out_channels, in_channels / groups, kH, kW)")
    check_float(xp, "input", x)
    check_same_dtype("weight", weight, "input", x)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    unbatched = x.ndim == 3
    batch, channels = (1, x.shape[0]) if unbatched else (x.shape[0], x.shape[1])
    out_channels, group_channels = weight.shape[0], weight.shape[1]
    if channels % groups:
        raise ValueError(f"groups: input has {channels} channels, not divisible by groups={groups}")
    if out_channels % groups:
        raise ValueError(
            f"groups: weight has {out_channels} output channels, not divisible by groups={groups}"
        )
    if group_channels * groups != channels:
        raise ValueError(
            f"weight: expects {group_channels * groups} input channels "
            f"({group_channels} per group x groups={groups}), but input has {channels} "
            f"(input shape {tuple(x.shape)}, weight shape {tuple(weight.shape)})"
        )
    if bias is not None:
        check_same_dtype("bias", bias, "input", x)
        check_shape("bias", bias, (out_channels,), "one value per output channel")
    kernel = (int(weight.shape[2]), int(weight.shape[3]))
    stride_ = as_pair("stride", stride, minimum=1)
    dilation_ = as_pair("dilation", dilation, minimum=1)
    pads = _resolve_padding(padding, kernel, stride_, dilation_)
    height, width = x.shape[-2], x.shape[-1]
    padded = (height + pads[0] + pads[1], width + pads[2] + pads[3])
    out_size = (
        sliding_output_size("weight", height, kernel[0], stride_[0], dilation_[0], padded[0]),
        sliding_output_size("weight", width, kernel[1], stride_[1], dilation_[1], padded[1]),
    )
    return _ConvPlan(
        xp=xp,
        unbatched=unbatched,
        batch=batch,
        in_channels=channels,
        out_channels=out_channels,
        groups=groups,
        kernel=kernel,
        stride=stride_,
        dilation=dilation_,
        pads=pads,
        padded=padded,
        out_size=out_size,
    )


# Column bytes per chunk, unless the workspace budget is smaller. Buffers above glibc's
# largest mmap threshold (32 MiB) are mapped afresh, page faults and all, on every call; chunks
# below it are recycled by the allocator. Measured on a 2-core x86 CPU: 3x3 32->32 on
# 64x32x28x28 (58 MiB of columns) 1.3x faster forward and backward, the other benchmark shapes
# unchanged (smaller chunks, 1-4 MiB, made their GEMMs slower).
CHUNK_BYTES = 16 * 2**20

# Flat columns (:func:`_flat_columns`) compute ``Wp - OW`` wrapped positions per output row
# and throw them away; worth it while they add at most 1/8 to the work (measured: at 7-14
# pixels, where they add 14-30%, the 2-D slices are as fast or faster).
_MAX_WRAPPED_FRACTION = 8


def _offsets(plan: _ConvPlan) -> list[int]:
    """Flat shift of each kernel offset ``(i, j)``: ``i * dh * Wp + j * dw``."""
    (kh, kw), (dh, dw), row = plan.kernel, plan.dilation, plan.padded[1]
    return [i * dh * row + j * dw for i in range(kh) for j in range(kw)]


def _front(plan: _ConvPlan) -> int:
    """Flat position of the first input element in the padded image."""
    return plan.pads[0] * plan.padded[1] + plan.pads[2]


def _flat_image(plan: _ConvPlan, x: Any, channel_major: bool) -> Any:
    """The padded image flattened row by row: ``(n, C, span)`` or ``(C, n, span)``, with
    ``span`` long enough for every window shift of :func:`_offsets`."""
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
    back = _offsets(plan)[-1] + plan.positions - front - height * row
    return _pad_axis(xp, flat, -1, front, max(back, 0), 0.0)


def _flat_columns(plan: _ConvPlan, x: Any) -> Any:
    """im2col for stride 1: every window is a shift of the flattened, padded image.

    Output position ``(oh, ow)`` reads padded ``(oh + i * dh, ow + j * dw)``, which in the
    image flattened row by row (row length ``Wp``) is position ``oh * Wp + ow`` shifted by
    ``i * dh * Wp + j * dw``. So each kernel offset's column block is one contiguous slice
    of the flat image, copied in long runs instead of row-sized pieces. Each output row gets
    ``Wp - OW`` extra positions that wrap into the next row; :func:`_to_nchw` drops them.
    """
    flat = _flat_image(plan, x, channel_major=True)
    length = plan.positions
    windows = plan.xp.stack([flat[..., o : o + length] for o in _offsets(plan)], axis=1)
    return plan.xp.reshape(windows, (plan.groups, plan.patch, x.shape[0] * length))


def _strided_columns(plan: _ConvPlan, x: Any) -> Any:
    """im2col for stride > 1 by 2-D strided slices, in channel-major order."""
    xp = plan.xp
    channels, n, height, width = x.shape[1], x.shape[0], x.shape[2], x.shape[3]
    # (C, n, H, W), laid out in that order: reshaping the transposed view copies it once
    # (input-sized), which makes the window slices below contiguous runs (measured: LeNet's
    # second conv builds its columns 8x faster than from the strided view).
    channel_major = xp.reshape(
        xp.reshape(xp.permute_dims(x, (1, 0, 2, 3)), (channels, -1)),
        (channels, n, height, width),
    )
    padded = pad2d(xp, channel_major, plan.pads)
    windows = extract_windows(
        xp, padded, plan.kernel, plan.stride, plan.dilation, plan.out_size, window_axis=1
    )  # (C, kh * kw, n, OH, OW)
    return xp.reshape(windows, (plan.groups, plan.patch, n * plan.positions))


def _columns(plan: _ConvPlan, x: Any) -> Any:
    """im2col in channel-major order: ``(groups, C/groups * kh * kw, n * positions)``.

    The batch sits inside the column axis, so one GEMM per group covers the whole chunk
    (BLAS is far faster on one large product than on many small ones); the price is a
    transpose of the (small) input and output instead of the (large) columns.
    """
    return _flat_columns(plan, x) if plan.flat else _strided_columns(plan, x)


def _chunks(plan: _ConvPlan, x: Any, columns: int = 0) -> list[tuple[int, int]]:
    """Batch ranges whose column buffer (``columns`` elements per image, by default the
    forward's), with the staging copies of the input, fits a chunk of :data:`CHUNK_BYTES`
    and the workspace budget (at least one image per chunk)."""
    columns = columns or plan.groups * plan.patch * plan.positions
    # The channel-major copy of the chunk and its padded version are built on the way.
    staging = 2 * plan.in_channels * plan.padded[0] * plan.padded[1]
    per_image = (columns + staging) * _itemsize(plan.xp, x)
    size = max(1, min(get_workspace_bytes(), CHUNK_BYTES) // max(per_image, 1))
    return [(start, min(start + size, plan.batch)) for start in range(0, plan.batch, size)]


def _concat_chunks(plan: _ConvPlan, x: Any, per_image: int, run: Any) -> Any:
    """``run(start, stop)`` over the batch chunks of :func:`_chunks`, concatenated."""
    pieces = [run(start, stop) for start, stop in _chunks(plan, x, per_image)]
    return pieces[0] if len(pieces) == 1 else plan.xp.concat(pieces, axis=0)


def _itemsize(xp: Any, x: Any) -> int:
    return 8 if x.dtype == xp.float64 else 4


def _kernels(plan: _ConvPlan, weight: Any) -> Any:
    return plan.xp.reshape(weight, (plan.groups, plan.out_channels // plan.groups, plan.patch))


def _to_nchw(plan: _ConvPlan, y: Any, channel_major: bool) -> Any:
    """``(O, n, positions)`` (channel-major) or ``(n, O, positions)`` to ``(n, O, OH, OW)``,
    dropping the flat layout's wrapped positions."""
    xp = plan.xp
    oh, ow = plan.out_size
    y = xp.reshape(y, (y.shape[0], y.shape[1], oh, plan.row))
    if plan.row != ow:
        y = y[..., :ow]
    return xp.permute_dims(y, (1, 0, 2, 3)) if channel_major else y


def _flat_cotangent(
    plan: _ConvPlan, dy: Any, channel_major: bool, margins: tuple[int, int] = (0, 0)
) -> Any:
    """Adjoint layout of :func:`_to_nchw`: ``(n, O, OH, OW)`` to ``(O, n, positions)`` or
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


def _with_batch_axis(plan: _ConvPlan, x: Any) -> Any:
    """``x`` with a batch axis (unbatched ``(C, H, W)`` input becomes ``(1, C, H, W)``)."""
    return plan.xp.expand_dims(x, axis=0) if plan.unbatched else x


# --- one input channel per group (depthwise) ------------------------------------------------
# The forward pass stays a GEMM per group on flat columns (as fast as the alternatives); the
# pullback multiplies and accumulates over the kernel offsets' window slices instead of a tiny
# GEMM per group and col2im: measured 1.6x faster forward+backward (64 channels, 14 pixels).


def _depthwise_windows(plan: _ConvPlan, x: Any) -> list[Any]:
    """Per kernel offset, ``(n, C, 1, positions)`` (stride 1) or ``(n, C, 1, OH, OW)``."""
    xp = plan.xp
    if plan.flat:
        flat = _flat_image(plan, x, channel_major=False)
        length = plan.positions
        return [xp.expand_dims(flat[..., o : o + length], axis=2) for o in _offsets(plan)]
    padded = pad2d(xp, x, plan.pads)
    slices = window_slices(padded, plan.kernel, plan.stride, plan.dilation, plan.out_size)
    return [xp.expand_dims(s, axis=2) for s in slices]


def _depthwise_taps(plan: _ConvPlan, weight: Any, ndim: int) -> list[Any]:
    """Per kernel offset, the taps ``(groups, multiplier)`` followed by ``ndim`` unit axes
    (to broadcast against window slices)."""
    xp = plan.xp
    multiplier = plan.out_channels // plan.groups
    taps = xp.reshape(weight, (plan.groups, multiplier, plan.patch, *([1] * ndim)))
    return [taps[:, :, k, ...] for k in range(plan.patch)]


def _depthwise_weight_grad(plan: _ConvPlan, x: Any, dy: Any) -> Any:
    """Depthwise dW: per kernel offset, the sum of window slice times dY."""
    xp = plan.xp
    multiplier = plan.out_channels // plan.groups
    total = None
    for start, stop in _chunks(plan, x, 3 * plan.out_channels * plan.positions):
        n, dy_chunk = stop - start, dy[start:stop, ...]
        if plan.flat:
            dy_chunk = _flat_cotangent(plan, dy_chunk, channel_major=False)
        dy_chunk = xp.reshape(dy_chunk, (n, plan.groups, multiplier, -1))
        parts = [
            xp.sum(xp.vecdot(xp.reshape(w, (n, plan.groups, 1, -1)), dy_chunk, axis=-1), axis=0)
            for w in _depthwise_windows(plan, x[start:stop, ...])
        ]
        part = xp.stack(parts, axis=-1)
        total = part if total is None else total + part
    return xp.reshape(total, (plan.out_channels, 1, *plan.kernel))


# --- the passes ------------------------------------------------------------------------------


def _correlate(plan: _ConvPlan, x: Any, weight: Any, keep: bool = False) -> tuple[Any, Any]:
    """The convolution of a batched ``x`` without bias, chunk by chunk.

    With ``keep``, also returns the chunks' columns when they fit half the workspace budget
    together (the pullback's weight gradient reuses them instead of rebuilding them), else
    ``None``.
    """
    kernels = _kernels(plan, weight)
    chunks = _chunks(plan, x)
    total = plan.batch * plan.groups * plan.patch * plan.positions * _itemsize(plan.xp, x)
    saved: list[Any] | None = [] if keep and 2 * total <= get_workspace_bytes() else None
    pieces = []
    for start, stop in chunks:
        cols = _columns(plan, x[start:stop, ...])
        product = kernels @ cols  # (groups, O / groups, n * positions)
        if saved is not None:
            saved.append(cols)
        cols = None  # release this chunk's columns before building the next
        y = plan.xp.reshape(product, (plan.out_channels, stop - start, plan.positions))
        pieces.append(_to_nchw(plan, y, channel_major=True))
    y = pieces[0] if len(pieces) == 1 else plan.xp.concat(pieces, axis=0)
    return y, saved


def _forward(
    plan: _ConvPlan, x: Any, weight: Any, bias: Any, keep: bool = False
) -> tuple[Any, Any]:
    xp = plan.xp
    y, saved = _correlate(plan, _with_batch_axis(plan, x), weight, keep)
    if bias is not None:
        y = y + xp.reshape(bias, (1, plan.out_channels, 1, 1))
    return (y[0, ...] if plan.unbatched else y), saved


def _weight_grad(plan: _ConvPlan, x: Any, dy: Any, saved: Any) -> Any:
    """dW = dY @ columns^T, chunk by chunk, with the forward's columns if it kept them."""
    if plan.depthwise:
        return _depthwise_weight_grad(plan, x, dy)
    xp = plan.xp
    dweight = None
    for index, (start, stop) in enumerate(_chunks(plan, x)):
        cols = saved[index] if saved is not None else _columns(plan, x[start:stop, ...])
        dy_cm = _flat_cotangent(plan, dy[start:stop, ...], channel_major=True)
        dy_cm = xp.reshape(dy_cm, (plan.groups, plan.out_channels // plan.groups, -1))
        part = dy_cm @ xp.matrix_transpose(cols)
        cols = None
        dweight = part if dweight is None else dweight + part
    return dweight


def _flat_fold(plan: _ConvPlan, spread: Any, margin: int) -> Any:
    """col2im for stride 1: the sum over kernel offsets of the per-offset gradients
    ``spread(k, start, stop)`` (positions ``start:stop`` of an array ``(..., positions + 2 *
    margin)`` with zero margins) shifted into place.

    Input element ``(h, w)`` sits at flat position ``front + h * Wp + w``; the gradient of
    offset ``k`` reaches it from position ``front + h * Wp + w - offsets[k]``. The margins
    make every shift a plain slice: one add per offset, where :func:`fold_windows` pads
    each offset's gradient into place first.
    """
    xp = plan.xp
    height, width = plan.padded[0] - plan.pads[0] - plan.pads[1], plan.padded[1]
    span = height * width
    start = margin + _front(plan)
    offsets = _offsets(plan)
    total = spread(0, start, start + span)
    for k, shift in enumerate(offsets[1:], start=1):
        total = total + spread(k, start - shift, start - shift + span)
    lead = tuple(total.shape[:-1])
    images = xp.reshape(total, (*lead, height, width))
    return images[..., : width - plan.pads[2] - plan.pads[3]]


def _margin(plan: _ConvPlan) -> int:
    """Zeros on each side of an image's flat cotangent so that :func:`_flat_fold` slices."""
    height = plan.padded[0] - plan.pads[0] - plan.pads[1]
    start = _front(plan)
    return max(0, _offsets(plan)[-1] - start, start + height * plan.padded[1] - plan.positions)


def _input_grad(plan: _ConvPlan, weight: Any, dy: Any) -> Any:
    """dX: the columns' gradient ``W^T @ dY`` folded back onto the input (col2im)."""
    xp = plan.xp
    n, kk = dy.shape[0], plan.kernel[0] * plan.kernel[1]
    if plan.stride == (1, 1) and not plan.flat:
        # The flat fold (one sum of shifted slices) beats per-offset pad-and-add even when
        # the wrapped positions widen its GEMM (measured 3x3, 64 ch at 14 px and 128 ch at
        # 7 px: the pullback 1.25x and 1.13x faster).
        plan = replace(plan, flat_anyway=True)
    if plan.flat and plan.depthwise:
        # Per offset, dY times the tap: a depthwise transposed convolution.
        margin = _margin(plan)
        multiplier = plan.out_channels // plan.groups
        taps = _depthwise_taps(plan, weight, 1)

        def depthwise_chunk(start: int, stop: int) -> Any:
            dyf = _flat_cotangent(plan, dy[start:stop, ...], False, margins=(margin, margin))
            dyf = xp.reshape(dyf, (stop - start, plan.groups, multiplier, -1))
            dx = _flat_fold(plan, lambda k, a, b: dyf[..., a:b] * taps[k], margin)
            return xp.sum(dx, axis=2) if multiplier > 1 else dx[:, :, 0, ...]

        per_image = 3 * plan.out_channels * (plan.positions + 2 * margin)
        return _concat_chunks(plan, dy, per_image, depthwise_chunk)
    if plan.flat:
        margin = _margin(plan)
        kernels_t = xp.matrix_transpose(_kernels(plan, weight))
        per_out = plan.out_channels // plan.groups

        def chunk(start: int, stop: int) -> Any:
            dyf = _flat_cotangent(plan, dy[start:stop, ...], True, margins=(margin, margin))
            dcols = kernels_t @ xp.reshape(dyf, (plan.groups, per_out, -1))
            dcols = xp.reshape(dcols, (plan.in_channels, kk, stop - start, -1))
            dx = _flat_fold(plan, lambda k, a, b: dcols[:, k, :, a:b], margin)
            return xp.permute_dims(dx, (1, 0, 2, 3))

        return _concat_chunks(
            plan, dy, plan.patch * plan.groups * (plan.positions + 2 * margin), chunk
        )
    # Stride > 1: per-offset 2-D gradients folded by zero-stuffing, padding and adding.
    if plan.depthwise:
        multiplier = plan.out_channels // plan.groups
        dy5 = xp.reshape(dy, (n, plan.groups, multiplier, *plan.out_size))
        taps = _depthwise_taps(plan, weight, 2)
        dcols = xp.stack([xp.sum(dy5 * tap, axis=2) for tap in taps], axis=2)
        dpadded = fold_windows(xp, dcols, plan.padded, plan.kernel, plan.stride, plan.dilation)
        return crop2d(dpadded, plan.pads)
    pieces = []
    oh, ow = plan.out_size
    for start, stop in _chunks(plan, dy):
        m = stop - start
        dy_cm = xp.reshape(
            xp.permute_dims(dy[start:stop, ...], (1, 0, 2, 3)),
            (plan.groups, plan.out_channels // plan.groups, m * oh * ow),
        )
        dcols = xp.reshape(
            xp.matrix_transpose(_kernels(plan, weight)) @ dy_cm,
            (plan.in_channels, kk, m, oh, ow),
        )
        dpadded = fold_windows(
            xp, dcols, plan.padded, plan.kernel, plan.stride, plan.dilation, window_axis=1
        )
        dcols = None
        pieces.append(xp.permute_dims(crop2d(dpadded, plan.pads), (1, 0, 2, 3)))
    return pieces[0] if len(pieces) == 1 else xp.concat(pieces, axis=0)


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Any:
    """2-D convolution (cross-correlation, as in every deep-learning library).

    Parameters
    ----------
    input : array
        ``(N, C, H, W)``, or ``(C, H, W)`` for one unbatched image; floating point.
    weight : array
        ``(out_channels, C / groups, kH, kW)``, same dtype as ``input``.
    bias : array, optional
        ``(out_channels,)``.
    stride : int or (int, int), default 1
        Step between windows; positive.
    padding : int, (int, int), 'valid' or 'same', default 0
        Zeros added on each side. ``'same'`` keeps the size (stride 1 only; an odd total
        padding puts the extra row/column at the bottom/right, as torch does).
    dilation : int or (int, int), default 1
        Spacing between kernel taps; positive.
    groups : int, default 1
        Split channels into this many independent convolutions.

    Returns
    -------
    array
        ``(N, out_channels, OH, OW)`` with
        ``OH = (H + pad_top + pad_bottom - dilation * (kH - 1) - 1) // stride + 1``.

    Examples
    --------
    The edge detector of the from-scratch walkthrough:

    >>> import xpnet, xpnet.functional as F
    >>> image = xpnet.asarray([[[[1, 2, 3, 0, 1], [4, 5, 6, 1, 2], [7, 8, 9, 2, 3],
    ...                          [1, 2, 3, 4, 5], [6, 7, 8, 5, 6]]]], dtype="float32")
    >>> kernel = xpnet.asarray([[[[1, 0, -1], [1, 0, -1], [1, 0, -1]]]], dtype="float32")
    >>> xpnet.to_numpy(F.conv2d(image, kernel))[0, 0].tolist()
    [[-6.0, 12.0, 12.0], [-6.0, 8.0, 8.0], [-6.0, 6.0, 6.0]]
    """
    plan = _plan(input, weight, bias, stride, padding, dilation, groups)
    return _forward(plan, input, weight, bias)[0]


_ALL = frozenset({"input", "weight", "bias"})


@defvjp(conv2d, "input", "weight", "bias", selective=True)
def _conv2d_vjp(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    needs: frozenset[str] = _ALL,
) -> tuple[Any, Pullback]:
    plan = _plan(input, weight, bias, stride, padding, dilation, groups)
    y, saved = _forward(plan, input, weight, bias, keep="weight" in needs)
    xp = plan.xp

    def pullback(dy: Any) -> tuple[Any, Any, Any]:
        x = _with_batch_axis(plan, input)
        dy_batched = _with_batch_axis(plan, dy)
        dx = dweight = dbias = None
        if "input" in needs:
            dx = _input_grad(plan, weight, dy_batched)
            if plan.unbatched:
                dx = dx[0, ...]
        if "weight" in needs:
            dweight = xp.reshape(_weight_grad(plan, x, dy_batched, saved), tuple(weight.shape))
        if bias is not None and "bias" in needs:
            dbias = xp.sum(dy_batched, axis=(0, 2, 3))
        return dx, dweight, dbias

    return y, pullback
