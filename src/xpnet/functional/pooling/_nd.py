"""Max and average pooling over 1-D and 3-D windows, through the 2-D pooling.

* 1-D: the 2-D pooling over a height of one (reshapes that copy nothing); torch's 1-D
  indices are the 2-D ones of that single row.
* 3-D: a box window is a depth window of planar windows. Each of the ``kD`` depth taps
  takes one strided slab of the (padded) depth, whose planes are pooled by the 2-D op with
  the output depths beside the channels; the taps then combine: a running first maximum
  (ties and NaN as the 2-D op decides them, earlier depth first: torch's order), or a sum
  over torch's depth divisor. The pullback sends each tap's share back through its 2-D
  pullback and folds the slabs onto the depth.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from .._autodiff import Pullback, defvjp, primitive
from .._select import all_finite, keep_where, multiplies_masks
from .._validation import as_tuple, check_float, check_ndim, namespace_of
from .._windows import fold_taps, pad_axis
from ._average import _avg_pool2d_vjp, _check_divisor, avg_pool2d
from ._max import _max_pool2d_vjp, max_pool2d
from ._plan import pooled_size

__all__ = ["avg_pool1d", "avg_pool3d", "max_pool1d", "max_pool3d"]

_LAYOUTS = {1: "(N, C, L) or (C, L)", 3: "(N, C, D, H, W) or (C, D, H, W)"}


def _window_args(
    rank: int, input: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any
) -> tuple[Any, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Check a ``rank``-D pooling's input and window; each error names its argument."""
    xp = namespace_of(input=input)
    check_ndim("input", input, (rank + 1, rank + 2), _LAYOUTS[rank])
    check_float(xp, "input", input)
    kernel = as_tuple("kernel_size", kernel_size, rank, minimum=1)
    stride_ = kernel if stride is None else as_tuple("stride", stride, rank, minimum=1)
    padding_ = as_tuple("padding", padding, rank, minimum=0)
    dilation_ = as_tuple("dilation", dilation, rank, minimum=1)
    if any(p > k // 2 for p, k in zip(padding_, kernel, strict=True)):
        raise ValueError(
            f"padding: expected at most half of kernel_size on each axis (as torch requires), "
            f"got padding {padding!r} with kernel_size {kernel_size!r}"
        )
    return xp, kernel, stride_, padding_, dilation_


# ------------------------------------------------------------------------------ 1-D


def _lift(a: Any) -> Any:
    """``(N, C, L)`` -> ``(N, C, 1, L)`` (or ``(C, L)`` -> ``(C, 1, L)``)."""
    return a[..., None, :]


def _drop(a: Any) -> Any:
    return a[..., 0, :]


def _lifted_output(output: Any) -> Any:
    if isinstance(output, tuple):
        return tuple(_drop(part) for part in output)
    return _drop(output)


_Pair = tuple[int, int]


def _max1d_args(
    input: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any
) -> tuple[_Pair, _Pair, _Pair, _Pair]:
    _, (k,), (s,), (p,), (d,) = _window_args(1, input, kernel_size, stride, padding, dilation)
    return (1, k), (1, s), (0, p), (1, d)


@primitive
def max_pool1d(
    input: Any,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    dilation: int | tuple[int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """1-D max pooling, as ``torch.nn.functional.max_pool1d``.

    Parameters
    ----------
    input : array
        ``(N, C, L)``, or ``(C, L)`` unbatched; floating point.
    kernel_size, stride, padding, dilation, ceil_mode
        As for :func:`max_pool2d`, one value each (an int or a 1-tuple).
    return_indices : bool, default False
        Also return each output's position along ``L`` (int64).

    Returns
    -------
    array, or (array, array) if ``return_indices``
        ``(N, C, OL)``; ties and NaN as :func:`max_pool2d` treats them.
    """
    window = _max1d_args(input, kernel_size, stride, padding, dilation)
    if return_indices:
        return _lifted_output(_max_pool2d_vjp(_lift(input), *window, ceil_mode, True)[0])
    return _drop(max_pool2d(_lift(input), *window, ceil_mode=ceil_mode))


@defvjp(max_pool1d, "input")
def _max_pool1d_vjp(
    input: Any,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    dilation: int | tuple[int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> tuple[Any, Pullback]:
    window = _max1d_args(input, kernel_size, stride, padding, dilation)
    output, lifted_pullback = _max_pool2d_vjp(_lift(input), *window, ceil_mode, return_indices)

    def pullback(dy: Any) -> tuple[Any]:
        return (_drop(lifted_pullback(_lift(dy))[0]),)

    return _lifted_output(output), pullback


def _avg1d_args(
    input: Any, kernel_size: Any, stride: Any, padding: Any
) -> tuple[_Pair, _Pair, _Pair]:
    _, (k,), (s,), (p,), _ = _window_args(1, input, kernel_size, stride, padding, 1)
    return (1, k), (1, s), (0, p)


@primitive
def avg_pool1d(
    input: Any,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Any:
    """1-D average pooling, as ``torch.nn.functional.avg_pool1d``.

    Parameters
    ----------
    input : array
        ``(N, C, L)``, or ``(C, L)`` unbatched; floating point.
    kernel_size, stride, padding, ceil_mode, count_include_pad
        As for :func:`avg_pool2d`, one value each (an int or a 1-tuple).

    Returns
    -------
    array
        ``(N, C, OL)``.
    """
    window = _avg1d_args(input, kernel_size, stride, padding)
    return _drop(
        avg_pool2d(_lift(input), *window, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    )


@defvjp(avg_pool1d, "input")
def _avg_pool1d_vjp(
    input: Any,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> tuple[Any, Pullback]:
    window = _avg1d_args(input, kernel_size, stride, padding)
    y, lifted_pullback = _avg_pool2d_vjp(_lift(input), *window, ceil_mode, count_include_pad)

    def pullback(dy: Any) -> tuple[Any]:
        return (_drop(lifted_pullback(_lift(dy))[0]),)

    return _drop(y), pullback


# ------------------------------------------------------------------------------ 3-D


class _Depth:
    """The depth axis of a 3-D pooling: its windows, slabs and their adjoint."""

    def __init__(
        self, xp: Any, size: int, kernel: int, stride: int, padding: int, dilation: int,
        ceil_mode: bool,
    ) -> None:  # fmt: skip
        self.xp, self.size, self.kernel, self.stride = xp, size, kernel, stride
        self.padding, self.dilation = padding, dilation
        self.out, overhang = pooled_size(size, kernel, stride, dilation, padding, ceil_mode)
        self.after = padding + overhang  # the ceil-mode overhang is padded too
        self.starts = [o * stride - padding for o in range(self.out)]

    def slabs(self, x: Any, fill: float) -> list[Any]:
        """Per tap, the ``(N, C, OD, H, W)`` slab of the depths it reads (``fill`` outside)."""
        padded = pad_axis(self.xp, x, 2, self.padding, self.after, fill)
        span = self.stride * (self.out - 1) + 1
        return [
            padded[:, :, t * self.dilation : t * self.dilation + span : self.stride, ...]
            for t in range(self.kernel)
        ]

    def planes(self, slab: Any) -> Any:
        """A slab as a batch of planes: ``(N, C * OD, H, W)``."""
        n, c, od, h, w = (int(s) for s in slab.shape)
        return self.xp.reshape(slab, (n, c * od, h, w))

    def unplane(self, planes: Any, channels: int) -> Any:
        """``(N, C * OD, ...)`` back to ``(N, C, OD, ...)``."""
        n, _, *rest = (int(s) for s in planes.shape)
        return self.xp.reshape(planes, (n, channels, self.out, *rest))

    def fold(self, slabs: list[Any]) -> Any:
        """Adjoint of :meth:`slabs`: the depth gradient, padding cropped."""
        padded = self.size + self.padding + self.after
        total = fold_taps(self.xp, slabs, 2, padded, self.stride, self.dilation)
        return total[:, :, self.padding : self.padding + self.size, ...]

    def per_output(self, values: list[Any], like: Any, dtype: Any) -> Any:
        """``values`` (one per output depth) as an ``(OD, 1, 1)`` array."""
        device = array_api_compat.device(like)
        return self.xp.reshape(self.xp.asarray(values, dtype=dtype, device=device), (-1, 1, 1))


def _batched(x: Any, unbatched: bool, xp: Any) -> Any:
    return xp.expand_dims(x, axis=0) if unbatched else x


def _max3d(
    input: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool,
    return_indices: bool, differentiate: bool,
) -> tuple[Any, Pullback | None]:  # fmt: skip
    xp, kernel, stride_, padding_, dilation_ = _window_args(
        3, input, kernel_size, stride, padding, dilation
    )
    unbatched = input.ndim == 4
    x = _batched(input, unbatched, xp)
    n, c, d, h, w = (int(s) for s in x.shape)
    depth = _Depth(xp, d, kernel[0], stride_[0], padding_[0], dilation_[0], bool(ceil_mode))
    window: tuple[Any, ...] = (kernel[1:], stride_[1:], padding_[1:], dilation_[1:], ceil_mode)
    best = tap = index = from_padding = None
    pullbacks = []
    device = array_api_compat.device(x)
    for t, slab in enumerate(depth.slabs(x, float("-inf"))):
        if differentiate or return_indices:
            output, tap_pullback = _max_pool2d_vjp(depth.planes(slab), *window, return_indices)
            pullbacks.append(tap_pullback)
        else:
            output = max_pool2d(depth.planes(slab), *window)
        values, plane_index = output if return_indices else (output, None)
        values = depth.unplane(values, c)
        sources = [start + t * depth.dilation for start in depth.starts]
        # A depth in the padding never wins over one inside (its -inf only ties).
        inside = depth.per_output([0 <= s < d for s in sources], x, xp.bool)
        if best is None:
            best, from_padding = values, xp.logical_not(inside)
            tap = xp.zeros(tuple(values.shape), dtype=xp.int64, device=device)
            better = None
        else:
            better = (
                (values > best) | (xp.isnan(values) & ~xp.isnan(best)) | (from_padding & inside)
            )
            best = xp.where(better, values, best)
            tap = xp.where(better, xp.asarray(t, dtype=xp.int64, device=device), tap)
            from_padding = xp.where(better, xp.logical_not(inside), from_padding)
        if plane_index is not None:
            flat = depth.per_output([s * h * w for s in sources], x, xp.int64)
            candidate = depth.unplane(plane_index, c) + flat
            index = candidate if better is None else xp.where(better, candidate, index)
    assert best is not None
    output = best[0, ...] if unbatched else best
    if return_indices:
        assert index is not None
        output = (output, index[0, ...] if unbatched else index)
    if not differentiate:
        return output, None

    def pullback(dy: Any) -> tuple[Any]:
        dy = _batched(dy, unbatched, xp)
        finite = multiplies_masks(xp, dy) and all_finite(xp, dy)
        slabs = []
        for t, tap_pullback in enumerate(pullbacks):
            share = keep_where(xp, tap == xp.asarray(t, dtype=xp.int64, device=device), dy, finite)
            planes = xp.reshape(share, (n, c * depth.out, *(int(s) for s in share.shape[3:])))
            slabs.append(xp.reshape(tap_pullback(planes)[0], (n, c, depth.out, h, w)))
        dx = depth.fold(slabs)
        return (dx[0, ...] if unbatched else dx,)

    return output, pullback


@primitive
def max_pool3d(
    input: Any,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    padding: int | tuple[int, int, int] = 0,
    dilation: int | tuple[int, int, int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """3-D max pooling, as ``torch.nn.functional.max_pool3d``.

    Parameters
    ----------
    input : array
        ``(N, C, D, H, W)``, or ``(C, D, H, W)`` unbatched; floating point.
    kernel_size, stride, padding, dilation, ceil_mode
        As for :func:`max_pool2d`, per axis (depth, height, width).
    return_indices : bool, default False
        Also return each output's flat index ``(d * H + h) * W + w`` (int64).

    Returns
    -------
    array, or (array, array) if ``return_indices``
        ``(N, C, OD, OH, OW)``; ties go to the first maximal element in ``(d, h, w)``
        order, where the pullback sends the gradient.
    """
    args = (input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    return _max3d(*args, differentiate=False)[0]


@defvjp(max_pool3d, "input")
def _max_pool3d_vjp(
    input: Any,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    padding: int | tuple[int, int, int] = 0,
    dilation: int | tuple[int, int, int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> tuple[Any, Pullback]:
    args = (input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    output, pullback = _max3d(*args, differentiate=True)
    assert pullback is not None
    return output, pullback


def _avg3d(
    input: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
    count_include_pad: bool, divisor_override: Any, differentiate: bool,
) -> tuple[Any, Pullback | None]:  # fmt: skip
    xp, kernel, stride_, padding_, _ = _window_args(3, input, kernel_size, stride, padding, 1)
    _check_divisor(divisor_override)
    unbatched = input.ndim == 4
    x = _batched(input, unbatched, xp)
    n, c, d, h, w = (int(s) for s in x.shape)
    depth = _Depth(xp, d, kernel[0], stride_[0], padding_[0], 1, bool(ceil_mode))
    window: tuple[Any, ...] = (
        kernel[1:],
        stride_[1:],
        padding_[1:],
        ceil_mode,
        count_include_pad,
        divisor_override,
    )
    total = None
    pullbacks = []
    for slab in depth.slabs(x, 0.0):
        if differentiate:
            part, tap_pullback = _avg_pool2d_vjp(depth.planes(slab), *window)
            pullbacks.append(tap_pullback)
        else:
            part = avg_pool2d(depth.planes(slab), *window)
        total = part if total is None else total + part
    assert total is not None
    # The 2-D op divided each plane sum by its planar divisor; the depth's factor is left
    # (torch's divisor is the product of the two: a box's count is separable).
    divisor = None
    if divisor_override is None:
        counts = []
        for start in depth.starts:
            end = min(start + depth.kernel, d + depth.padding)
            counts.append(end - start if count_include_pad else min(end, d) - max(start, 0))
        divisor = depth.per_output([float(count) for count in counts], x, x.dtype)
    y = depth.unplane(total, c)
    if divisor is not None:
        y = y / divisor
    output = y[0, ...] if unbatched else y
    if not differentiate:
        return output, None

    def pullback(dy: Any) -> tuple[Any]:
        dy = _batched(dy, unbatched, xp)
        if divisor is not None:
            dy = dy / divisor
        planes = xp.reshape(dy, (n, c * depth.out, *(int(s) for s in dy.shape[3:])))
        slabs = [xp.reshape(p(planes)[0], (n, c, depth.out, h, w)) for p in pullbacks]
        dx = depth.fold(slabs)
        return (dx[0, ...] if unbatched else dx,)

    return output, pullback


@primitive
def avg_pool3d(
    input: Any,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    padding: int | tuple[int, int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Any:
    """3-D average pooling, as ``torch.nn.functional.avg_pool3d``.

    Parameters
    ----------
    input : array
        ``(N, C, D, H, W)``, or ``(C, D, H, W)`` unbatched; floating point.
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As for :func:`avg_pool2d`, per axis (depth, height, width).

    Returns
    -------
    array
        ``(N, C, OD, OH, OW)``.
    """
    args = (input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    return _avg3d(*args, differentiate=False)[0]


@defvjp(avg_pool3d, "input")
def _avg_pool3d_vjp(
    input: Any,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] | None = None,
    padding: int | tuple[int, int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> tuple[Any, Pullback]:
    args = (input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    output, pullback = _avg3d(*args, differentiate=True)
    assert pullback is not None
    return output, pullback
