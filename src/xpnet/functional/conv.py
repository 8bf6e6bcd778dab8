"""2-D convolution (im2col + one GEMM per group) and its pullback."""

from __future__ import annotations

from dataclasses import dataclass
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
from ._windows import crop2d, extract_windows, fold_windows, pad2d, sliding_output_size

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

    @property
    def patch(self) -> int:
        """Length of one group's flattened receptive field, ``C/groups * kh * kw``."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]


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


def _columns(plan: _ConvPlan, x: Any) -> Any:
    """im2col in channel-major order: ``(groups, C/groups * kh * kw, n * OH * OW)``.

    The batch sits inside the column axis, so one GEMM per group covers the whole batch
    (BLAS is far faster on one large product than on many small ones); the price is a
    transpose of the (small) input and output instead of the (large) columns.
    """
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
    oh, ow = plan.out_size
    return xp.reshape(windows, (plan.groups, plan.patch, x.shape[0] * oh * ow))


def _chunks(plan: _ConvPlan, x: Any, buffers: int = 1) -> list[tuple[int, int]]:
    """Batch ranges whose ``buffers`` column-sized arrays, with the staging copies of the
    input, fit the workspace budget together (at least one image per chunk)."""
    oh, ow = plan.out_size
    columns = buffers * plan.groups * plan.patch * oh * ow
    # The channel-major copy of the chunk and its padded version are built on the way.
    staging = 2 * plan.in_channels * plan.padded[0] * plan.padded[1]
    per_image = (columns + staging) * _itemsize(plan.xp, x)
    size = max(1, get_workspace_bytes() // max(per_image, 1))
    return [(start, min(start + size, plan.batch)) for start in range(0, plan.batch, size)]


def _itemsize(xp: Any, x: Any) -> int:
    return 8 if x.dtype == xp.float64 else 4


def _kernels(plan: _ConvPlan, weight: Any) -> Any:
    return plan.xp.reshape(weight, (plan.groups, plan.out_channels // plan.groups, plan.patch))


def _product_to_nchw(plan: _ConvPlan, product: Any, n: int) -> Any:
    """``(groups, O/groups, n * OH * OW)`` back to ``(n, O, OH, OW)``."""
    xp = plan.xp
    y = xp.reshape(product, (plan.out_channels, n, *plan.out_size))
    return xp.permute_dims(y, (1, 0, 2, 3))


def _with_batch_axis(plan: _ConvPlan, x: Any) -> Any:
    """``x`` with a batch axis (unbatched ``(C, H, W)`` input becomes ``(1, C, H, W)``)."""
    return plan.xp.expand_dims(x, axis=0) if plan.unbatched else x


def _forward(plan: _ConvPlan, x: Any, weight: Any, bias: Any) -> tuple[Any, Any]:
    """Output and, when the batch fit in one chunk, its columns (kept for the pullback)."""
    xp = plan.xp
    x = _with_batch_axis(plan, x)
    kernels = _kernels(plan, weight)
    pieces, cols = [], None
    chunks = _chunks(plan, x)
    for start, stop in chunks:
        cols = None  # release the last chunk's columns before building the next
        cols = _columns(plan, x[start:stop, ...])
        pieces.append(_product_to_nchw(plan, kernels @ cols, stop - start))
    if len(chunks) > 1:
        cols = None  # not kept: the pullback rebuilds columns chunk by chunk
        y = xp.concat(pieces, axis=0)
    else:
        y = pieces[0]
    if bias is not None:
        y = y + xp.reshape(bias, (1, plan.out_channels, 1, 1))
    if plan.unbatched:
        y = y[0, ...]
    return y, cols


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
    y, saved_cols = _forward(plan, input, weight, bias)
    batch_input = _with_batch_axis(plan, input)
    need_dx, need_dw = "input" in needs, "weight" in needs
    if len(_chunks(plan, batch_input, buffers=2)) > 1 or not need_dw:
        # Rebuilt chunk by chunk so that columns and dcols fit together; and not needed at
        # all without a weight gradient.
        saved_cols = None
    xp = plan.xp
    per_group = plan.out_channels // plan.groups
    kernels = _kernels(plan, weight)
    oh, ow = plan.out_size

    def pullback(dy: Any) -> tuple[Any, Any, Any]:
        x = batch_input
        if plan.unbatched:
            dy = xp.expand_dims(dy, axis=0)
        dweight, dx_pieces = None, []
        # The columns and their gradient (dcols) are alive together: budget for both,
        # unless the forward pass already kept the columns of the whole batch.
        chunks = [(0, plan.batch)] if saved_cols is not None else _chunks(plan, x, buffers=2)
        for start, stop in chunks if need_dx or need_dw else []:
            n = stop - start
            # dY in the columns' channel-major layout: (G, O/G, n * OH * OW).
            dy_cm = xp.reshape(
                xp.permute_dims(dy[start:stop, ...], (1, 0, 2, 3)),
                (plan.groups, per_group, n * oh * ow),
            )
            if need_dw:
                cols = saved_cols if saved_cols is not None else _columns(plan, x[start:stop, ...])
                # dW = dY @ cols^T, one GEMM per group over the whole chunk.
                part = dy_cm @ xp.matrix_transpose(cols)
                cols = None  # free before dcols is built: the budget covers two buffers
                dweight = part if dweight is None else dweight + part
            if not need_dx:
                continue
            # dcols = W^T @ dY, then col2im back onto the padded, channel-major input.
            dcols = xp.reshape(
                xp.matrix_transpose(kernels) @ dy_cm,
                (plan.in_channels, plan.kernel[0] * plan.kernel[1], n, oh, ow),
            )
            dpadded = fold_windows(
                xp, dcols, plan.padded, plan.kernel, plan.stride, plan.dilation, window_axis=1
            )
            dcols = None
            dx_pieces.append(xp.permute_dims(crop2d(dpadded, plan.pads), (1, 0, 2, 3)))
        dx = None
        if need_dx:
            dx = dx_pieces[0] if len(dx_pieces) == 1 else xp.concat(dx_pieces, axis=0)
            if plan.unbatched:
                dx = dx[0, ...]
        dbias = None if bias is None or "bias" not in needs else xp.sum(dy, axis=(0, 2, 3))
        if dweight is not None:
            dweight = xp.reshape(dweight, tuple(weight.shape))
        return dx, dweight, dbias

    return y, pullback
