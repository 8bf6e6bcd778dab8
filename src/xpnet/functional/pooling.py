"""Pooling over 2-D windows (max, average, adaptive average) and their pullbacks.

Everything is standard-only, with no scatter and no in-place writes:

* the forward pads (``-inf`` for max, zeros for average) and reads the windows with strided
  slices (average pooling sums them separably: kH row slices, then kW column slices);
* the pullback sends gradients back with :func:`~._windows.fold_windows` (col2im), except
  when the windows tile the input (``stride == kernel_size``, no padding, dilation or
  ceil-mode overhang): disjoint windows go back with one reshape, measured 2-4x faster.

On a launch-bound device (a GPU) tiling max pooling keeps each window's ``argmax`` from the
forward pass and its pullback is one one-hot select: 3 launches each way, where the running
first-maximum that is fastest on a CPU costs about 8 per kernel offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import array_api_compat

from ..backends import DeviceProfile, device_profile
from ._autodiff import Pullback, defvjp
from ._constants import cached_constant
from ._validation import as_pair, check_float, check_ndim, constant, namespace_of
from ._windows import crop2d, fold_windows, pad2d, window_slices

__all__ = ["adaptive_avg_pool2d", "avg_pool2d", "max_pool2d"]

IntPair = int | tuple[int, int]


@dataclass(frozen=True)
class _PoolPlan:
    """Everything a windowed pooling pass needs, checked once."""

    xp: Any
    profile: DeviceProfile
    unbatched: bool
    size: tuple[int, int]  # input height, width
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    out_size: tuple[int, int]
    extra: tuple[int, int]  # ceil-mode overhang past the bottom / right padding

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` padding, overhang included."""
        (ph, pw), (eh, ew) = self.padding, self.extra
        return (ph, ph + eh, pw, pw + ew)

    @property
    def padded(self) -> tuple[int, int]:
        top, bottom, left, right = self.pads
        return (self.size[0] + top + bottom, self.size[1] + left + right)

    @property
    def tiles(self) -> bool:
        """Whether the windows tile (a crop of) the input: disjoint, laid back by a reshape."""
        return (
            self.stride == self.kernel
            and self.dilation == (1, 1)
            and self.padding == (0, 0)
            and self.extra == (0, 0)
        )


def _pooled_size(
    size: int, kernel: int, stride: int, dilation: int, pad: int, ceil_mode: bool
) -> tuple[int, int]:
    """Number of windows along one axis and the overhang past the padding, as torch counts.

    Unlike a convolution, torch's ceil mode may keep a single window that is wider than the
    padded input (it then covers all of it), so only an empty output is an error.
    """
    span = dilation * (kernel - 1) + 1
    padded = size + 2 * pad
    out = (padded - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    # torch drops a last window that would start inside the right padding.
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    if out < 1:
        raise ValueError(
            f"kernel_size: window of extent {span} (kernel {kernel}, dilation {dilation}) is "
            f"larger than the padded input ({padded}, from input size {size} and padding {pad})"
        )
    return out, max(0, (out - 1) * stride + span - padded)


def _plan(
    x: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
) -> _PoolPlan:
    xp = namespace_of(input=x)
    check_ndim("input", x, (3, 4), "(N, C, H, W) or (C, H, W)")
    check_float(xp, "input", x)
    kernel = as_pair("kernel_size", kernel_size, minimum=1)
    stride_ = kernel if stride is None else as_pair("stride", stride, minimum=1)
    padding_ = as_pair("padding", padding, minimum=0)
    dilation_ = as_pair("dilation", dilation, minimum=1)
    if any(p > k // 2 for p, k in zip(padding_, kernel, strict=True)):
        raise ValueError(
            f"padding: expected at most half of kernel_size on each axis (as torch requires), "
            f"got padding {padding!r} with kernel_size {kernel_size!r}"
        )
    size = (int(x.shape[-2]), int(x.shape[-1]))
    sizes = [
        _pooled_size(n, k, s, d, p, bool(ceil_mode))
        for n, k, s, d, p in zip(size, kernel, stride_, dilation_, padding_, strict=True)
    ]
    return _PoolPlan(
        xp=xp,
        profile=device_profile(x),
        unbatched=x.ndim == 3,
        size=size,
        kernel=kernel,
        stride=stride_,
        dilation=dilation_,
        padding=padding_,
        out_size=(sizes[0][0], sizes[1][0]),
        extra=(sizes[0][1], sizes[1][1]),
    )


def _untile(plan: _PoolPlan, blocks: Any) -> Any:
    """Lay tiling windows ``(N, C, OH, kH, OW, kW)`` back out as ``(N, C, H, W)``, with zeros
    in the rows and columns that floor mode left out."""
    (oh, ow), (kh, kw), (h, w) = plan.out_size, plan.kernel, plan.size
    full = plan.xp.reshape(blocks, (blocks.shape[0], blocks.shape[1], oh * kh, ow * kw))
    return pad2d(plan.xp, full, (0, h - oh * kh, 0, w - ow * kw))


def _batched(plan: _PoolPlan, x: Any) -> Any:
    return plan.xp.expand_dims(x, axis=0) if plan.unbatched else x


def _unbatched(plan: _PoolPlan, y: Any) -> Any:
    return y[0, ...] if plan.unbatched else y


# --- max pooling -----------------------------------------------------------------------------


def _int_array(xp: Any, values: list[Any], like: Any) -> Any:
    return xp.asarray(values, dtype=xp.int64, device=array_api_compat.device(like))


def _first_inside(plan: _PoolPlan, like: Any) -> tuple[Any, Any]:
    """Each window's first element inside the input, as ``(OH, OW)`` int64 arrays.

    Returns the flat kernel offset ``i * kW + j`` (-1 for a window that misses the input,
    which only dilation allows) and torch's flat input index ``row * W + col`` of that element
    (torch starts its search there and steps by the dilation while the row is negative).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (h, w) = (
        plan.kernel,
        plan.stride,
        plan.padding,
        plan.dilation,
        plan.size,
    )
    rows = [(o * sh - ph, (max(0, ph - o * sh) + dh - 1) // dh) for o in range(plan.out_size[0])]
    cols = [(o * sw - pw, (max(0, pw - o * sw) + dw - 1) // dw) for o in range(plan.out_size[1])]
    taps = [
        [
            i * kw + j if i < kh and j < kw and top + i * dh < h and left + j * dw < w else -1
            for left, j in cols
        ]
        for top, i in rows
    ]
    index = [[(top + i * dh) * w + left + j * dw for left, j in cols] for top, i in rows]
    return _int_array(plan.xp, taps, like), _int_array(plan.xp, index, like)


def _max_forward(plan: _PoolPlan, x: Any, return_indices: bool) -> tuple[Any, Any, Any]:
    """Max over each window of a 4-D ``x``, the flat kernel offset it came from and,
    if asked, torch's flat index ``row * W + col`` of that element in the input plane.

    The offset is torch's: the first maximal element in row-major order among those inside
    the input (argmax sees the ``-inf`` padding too, which wins only in a window whose input
    elements are all ``-inf``; torch then picks the first one inside).
    """
    xp = plan.xp
    kw, (oh, ow), (sh, sw), (ph, pw), (dh, dw) = (
        plan.kernel[1],
        plan.out_size,
        plan.stride,
        plan.padding,
        plan.dilation,
    )
    padded = pad2d(xp, x, plan.pads, float("-inf"))
    slices = window_slices(padded, plan.kernel, plan.stride, plan.dilation, (oh, ow))
    # A running first maximum over the offsets, with argmax's rule (a later element wins
    # when strictly greater, or when it is NaN and the best so far is not): elementwise on
    # output-sized arrays, which beats stacking the windows and reducing a strided axis
    # (measured: 2x2 pooling's forward+backward 2.4x faster with NumPy).
    device = array_api_compat.device(x)
    y = slices[0]
    tap = xp.zeros(tuple(y.shape), dtype=xp.int64, device=device)
    for offset, candidate in enumerate(slices[1:], start=1):
        better = (candidate > y) | (xp.isnan(candidate) & ~xp.isnan(y))
        y = xp.where(better, candidate, y)
        tap = xp.where(better, xp.asarray(offset, dtype=xp.int64, device=device), tap)
    indices = None
    if return_indices:
        width = plan.size[1]
        corner = [[(o * sh - ph) * width + q * sw - pw for q in range(ow)] for o in range(oh)]
        indices = _int_array(xp, corner, x) + (tap // kw) * (dh * width) + (tap % kw) * dw
    if plan.padding != (0, 0):
        first_tap, first_index = _first_inside(plan, x)
        all_minus_inf = y == float("-inf")
        tap = xp.where(all_minus_inf, first_tap, tap)
        if indices is not None:
            indices = xp.where(all_minus_inf, first_index, indices)
    return y, tap, indices


def _tile_planes(plan: _PoolPlan, x: Any) -> Any:
    """Tiling windows (``plan.tiles``) de-interleaved: ``(kH * kW, N, C, OH, OW)``, plane
    ``i * kW + j`` holding every window's element at offset ``(i, j)``.

    One copy up front: every later pass reads contiguous planes instead of stride-``k``
    slices (measured with NumPy on 64x32x28x28, 2x2: a comparison on a contiguous plane is
    9x faster than on the strided slice, and max-pool's forward+backward 3.7x faster).
    """
    xp = plan.xp
    (oh, ow), (kh, kw) = plan.out_size, plan.kernel
    n, c = x.shape[0], x.shape[1]
    blocks = xp.reshape(x[..., : oh * kh, : ow * kw], (n, c, oh, kh, ow, kw))
    return xp.reshape(xp.permute_dims(blocks, (3, 5, 0, 1, 2, 4)), (kh * kw, n, c, oh, ow))


def _tiled_max_cotangent(plan: _PoolPlan, planes: Any, y: Any, dy: Any) -> Any:
    """The pullback of max over :func:`_tile_planes`: each cotangent goes to its window's
    first maximal element in row-major order (a NaN counts as maximal, since it made the
    window's maximum NaN), as in :func:`_max_forward`."""
    xp = plan.xp
    (kh, kw), zero = plan.kernel, constant(xp, 0.0, dy)
    taken, rows = None, []
    for i in range(kh):
        row = []
        for j in range(kw):
            plane = planes[i * kw + j, ...]
            hit = (plane == y) | xp.isnan(plane)
            first = hit if taken is None else hit & ~taken
            taken = hit if taken is None else taken | hit
            row.append(xp.where(first, dy, zero))
        rows.append(xp.stack(row, axis=-1))  # (N, C, OH, OW, kW)
    return _untile(plan, xp.stack(rows, axis=3))  # (N, C, OH, kH, OW, kW)


def _tiled_argmax_cotangent(plan: _PoolPlan, tap: Any, dy: Any) -> Any:
    """The pullback of max over :func:`_tile_planes` given each window's ``argmax`` over
    the planes (its first maximal element, a NaN counting as maximal): one one-hot select,
    then the planes laid back out."""
    xp = plan.xp
    (kh, kw), (oh, ow) = plan.kernel, plan.out_size
    offsets = cached_constant(
        tap,
        ("max_pool2d offsets", kh * kw),
        lambda xp, device: xp.reshape(
            xp.arange(kh * kw, dtype=tap.dtype, device=device), (kh * kw, 1, 1, 1, 1)
        ),
    )
    planes = xp.where(xp.expand_dims(tap, axis=0) == offsets, xp.expand_dims(dy, axis=0), 0.0)
    n, c = dy.shape[0], dy.shape[1]
    blocks = xp.reshape(planes, (kh, kw, n, c, oh, ow))
    return _untile(plan, xp.permute_dims(blocks, (2, 3, 4, 0, 5, 1)))


def _max_cotangent(plan: _PoolPlan, dy: Any, tap: Any) -> Any:
    """Send each output's cotangent to its window's chosen element (4-D in, 4-D out)."""
    xp = plan.xp
    kh, kw = plan.kernel
    zero = constant(xp, 0.0, dy)
    offsets = xp.arange(kh * kw, dtype=xp.int64, device=array_api_compat.device(dy))
    hot = xp.expand_dims(tap, axis=2) == xp.reshape(offsets, (kh * kw, 1, 1))
    cols = xp.where(hot, xp.expand_dims(dy, axis=2), zero)  # (N, C, kH * kW, OH, OW)
    if plan.tiles:
        # Disjoint windows: interleaving the offsets with the positions is the whole col2im.
        n, c, oh, ow = dy.shape
        cols = xp.reshape(cols, (n, c, kh, kw, oh, ow))
        return _untile(plan, xp.permute_dims(cols, (0, 1, 4, 2, 5, 3)))
    full = fold_windows(xp, cols, plan.padded, plan.kernel, plan.stride, plan.dilation)
    return crop2d(full, plan.pads)


def max_pool2d(
    input: Any,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    input : array
        ``(N, C, H, W)``, or ``(C, H, W)`` for one unbatched image; floating point.
    kernel_size : int or (int, int)
        Window size; positive.
    stride : int or (int, int), optional
        Step between windows; defaults to ``kernel_size``.
    padding : int or (int, int), default 0
        Implicit ``-inf`` added on each side; at most half of ``kernel_size`` (torch's rule).
    dilation : int or (int, int), default 1
        Spacing between the elements of a window.
    ceil_mode : bool, default False
        Round the output size up, so a last window may hang over the bottom/right edge (it
        must start inside the input or the left/top padding).
    return_indices : bool, default False
        Also return, for each output, the flat index ``row * W + col`` into the unpadded
        input plane of the element it was taken from (int64), as torch does.

    Returns
    -------
    array, or (array, array) if ``return_indices``
        ``(N, C, OH, OW)`` with ``OH = (H + 2 * padding - dilation * (kH - 1) - 1) // stride
        + 1`` (rounded up in ``ceil_mode``). Ties go to the first maximal element in
        row-major order, which is also where the pullback sends the gradient. A window
        holding NaN gives NaN, as in torch; its index then points at the window's first NaN
        (torch's kernels point at the last one).

    Examples
    --------
    The pooling step of the from-scratch walkthrough (after ReLU):

    >>> import xpnet, xpnet.functional as F
    >>> features = xpnet.asarray([[[[0, 12, 12], [0, 8, 8], [0, 6, 6]]]], dtype="float32")
    >>> xpnet.to_numpy(F.max_pool2d(features, 2)).tolist()
    [[[[12.0]]]]
    >>> y, indices = F.max_pool2d(features, 2, stride=1, return_indices=True)
    >>> xpnet.to_numpy(indices)[0, 0].tolist()
    [[1, 1], [4, 4]]
    """
    if return_indices:
        return _max_pool2d_vjp(
            input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
        )[0]
    # Inference needs no offsets: an elementwise maximum over the window slices.
    plan = _plan(input, kernel_size, stride, padding, dilation, ceil_mode)
    xp = plan.xp
    if plan.tiles:
        return _unbatched(plan, xp.max(_tile_planes(plan, _batched(plan, input)), axis=0))
    padded = pad2d(xp, _batched(plan, input), plan.pads, float("-inf"))
    slices = window_slices(padded, plan.kernel, plan.stride, plan.dilation, plan.out_size)
    y = slices[0]
    for candidate in slices[1:]:
        y = xp.maximum(y, candidate)
    return _unbatched(plan, y)


@defvjp(max_pool2d, "input")
def _max_pool2d_vjp(
    input: Any,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> tuple[Any, Pullback]:
    plan = _plan(input, kernel_size, stride, padding, dilation, ceil_mode)
    if plan.tiles and not return_indices and plan.profile.launch_bound:
        planes = _tile_planes(plan, _batched(plan, input))
        y, tap = plan.xp.max(planes, axis=0), plan.xp.argmax(planes, axis=0)
        planes = None  # the pullback needs only the argmax

        def argmax_pullback(dy: Any) -> tuple[Any]:
            cotangent = _tiled_argmax_cotangent(plan, tap, _batched(plan, dy))
            return (_unbatched(plan, cotangent),)

        return _unbatched(plan, y), argmax_pullback
    if plan.tiles and not return_indices:
        # On a CPU: a running first maximum in the pullback (argmax over the planes is 6-85x
        # slower there than elementwise passes, measured with NumPy and torch).
        planes = _tile_planes(plan, _batched(plan, input))
        y = plan.xp.max(planes, axis=0)

        def tiled_pullback(dy: Any) -> tuple[Any]:
            cotangent = _tiled_max_cotangent(plan, planes, y, _batched(plan, dy))
            return (_unbatched(plan, cotangent),)

        return _unbatched(plan, y), tiled_pullback
    y, tap, indices = _max_forward(plan, _batched(plan, input), bool(return_indices))
    output = _unbatched(plan, y)
    if indices is not None:
        output = (output, _unbatched(plan, indices))

    def pullback(dy: Any) -> tuple[Any]:
        return (_unbatched(plan, _max_cotangent(plan, _batched(plan, dy), tap)),)

    return output, pullback


# --- average pooling -------------------------------------------------------------------------


def _check_divisor(divisor_override: Any) -> None:
    message = f"divisor_override: expected a non-zero int or None, got {divisor_override!r}"
    if divisor_override is None:
        return
    if isinstance(divisor_override, bool) or not isinstance(divisor_override, int):
        raise TypeError(message)
    if divisor_override == 0:
        raise ValueError(message)


def _avg_divisor(
    plan: _PoolPlan, like: Any, count_include_pad: bool, divisor_override: int | None
) -> Any:
    """torch's divisor of each window, ``(OH, OW)``.

    With ``count_include_pad`` a window counts the padding but not the ceil-mode overhang
    past it; without, only the input elements it covers.
    """
    xp = plan.xp
    if divisor_override is not None:
        return constant(xp, float(divisor_override), like)
    counts = []
    for n, k, s, p, out in zip(
        plan.size, plan.kernel, plan.stride, plan.padding, plan.out_size, strict=True
    ):
        starts = [o * s - p for o in range(out)]
        ends = [min(start + k, n + p) for start in starts]
        if count_include_pad:
            counts.append([end - start for start, end in zip(starts, ends, strict=True)])
        else:
            counts.append(
                [min(end, n) - max(start, 0) for start, end in zip(starts, ends, strict=True)]
            )
    device = array_api_compat.device(like)
    rows = xp.asarray(counts[0], dtype=like.dtype, device=device)
    cols = xp.asarray(counts[1], dtype=like.dtype, device=device)
    return xp.reshape(rows, (plan.out_size[0], 1)) * cols


def _window_sums(plan: _PoolPlan, x: Any) -> Any:
    """Sum of each window of a 4-D ``x``: separably, kH row slices then kW column slices."""
    xp = plan.xp
    (kh, kw), (sh, sw), (oh, ow) = plan.kernel, plan.stride, plan.out_size
    padded = pad2d(xp, x, plan.pads)
    rows = padded[..., 0 : sh * (oh - 1) + 1 : sh, :]
    for i in range(1, kh):
        rows = rows + padded[..., i : i + sh * (oh - 1) + 1 : sh, :]
    sums = rows[..., 0 : sw * (ow - 1) + 1 : sw]
    for j in range(1, kw):
        sums = sums + rows[..., j : j + sw * (ow - 1) + 1 : sw]
    return sums


def _window_sums_adjoint(plan: _PoolPlan, g: Any) -> Any:
    """Adjoint of :func:`_window_sums`: every input element gets the sum of its windows' g."""
    xp = plan.xp
    (kh, kw), (sh, sw), (oh, ow) = plan.kernel, plan.stride, plan.out_size
    n, c = g.shape[0], g.shape[1]
    if plan.tiles:
        spread = xp.broadcast_to(xp.reshape(g, (n, c, oh, 1, ow, 1)), (n, c, oh, kh, ow, kw))
        return _untile(plan, spread)
    height, width = plan.padded
    cols = xp.broadcast_to(xp.expand_dims(g, axis=2), (n, c, kw, oh, ow))
    rows = fold_windows(xp, cols, (oh, width), (1, kw), (1, sw), (1, 1))
    cols = xp.broadcast_to(xp.expand_dims(rows, axis=2), (n, c, kh, oh, width))
    full = fold_windows(xp, cols, (height, width), (kh, 1), (sh, 1), (1, 1))
    return crop2d(full, plan.pads)


def avg_pool2d(
    input: Any,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Any:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    input : array
        ``(N, C, H, W)``, or ``(C, H, W)`` for one unbatched image; floating point.
    kernel_size : int or (int, int)
        Window size; positive.
    stride : int or (int, int), optional
        Step between windows; defaults to ``kernel_size``.
    padding : int or (int, int), default 0
        Implicit zeros added on each side; at most half of ``kernel_size`` (torch's rule).
    ceil_mode : bool, default False
        Round the output size up, so a last window may hang over the bottom/right edge.
    count_include_pad : bool, default True
        Count the padding in the divisor. Either way the part of a ceil-mode window beyond
        the padding is never counted (torch's rule).
    divisor_override : int, optional
        Divide every window's sum by this non-zero number instead.

    Returns
    -------
    array
        ``(N, C, OH, OW)`` with ``OH = (H + 2 * padding - kH) // stride + 1`` (rounded up
        in ``ceil_mode``).

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]], dtype="float32")
    >>> xpnet.to_numpy(F.avg_pool2d(x, 2, stride=1)).tolist()
    [[[[3.0, 4.0], [6.0, 7.0]]]]
    >>> xpnet.to_numpy(F.avg_pool2d(x, 2, ceil_mode=True)).tolist()
    [[[[3.0, 4.5], [7.5, 9.0]]]]
    """
    return _avg_pool2d_vjp(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )[0]


@defvjp(avg_pool2d, "input")
def _avg_pool2d_vjp(
    input: Any,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> tuple[Any, Pullback]:
    plan = _plan(input, kernel_size, stride, padding, 1, ceil_mode)
    _check_divisor(divisor_override)
    divisor = _avg_divisor(plan, input, bool(count_include_pad), divisor_override)
    y = _window_sums(plan, _batched(plan, input)) / divisor

    def pullback(dy: Any) -> tuple[Any]:
        return (_unbatched(plan, _window_sums_adjoint(plan, _batched(plan, dy) / divisor)),)

    return _unbatched(plan, y), pullback


# --- adaptive average pooling ----------------------------------------------------------------


def _adaptive_output_size(output_size: Any, size: tuple[int, int]) -> tuple[int, int]:
    message = "output_size: expected a non-negative int or a pair of them (or None), got "
    if isinstance(output_size, bool):
        raise TypeError(message + repr(output_size))
    if isinstance(output_size, int):
        entries: list[Any] = [output_size, output_size]
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        entries = list(output_size)
    else:
        raise TypeError(message + repr(output_size))
    resolved = []
    for entry, n in zip(entries, size, strict=True):
        if entry is None:
            resolved.append(n)
        elif isinstance(entry, bool) or not isinstance(entry, int):
            raise TypeError(message + repr(output_size))
        elif entry < 0:
            raise ValueError(message + repr(output_size))
        else:
            resolved.append(entry)
    return (resolved[0], resolved[1])


def _averaging_matrix(xp: Any, out: int, size: int, like: Any) -> Any:
    """``(out, size)`` matrix whose row ``i`` averages torch's bin
    ``[floor(i * size / out), ceil((i + 1) * size / out))``."""
    device = array_api_compat.device(like)
    starts = xp.asarray([i * size // out for i in range(out)], dtype=xp.int64, device=device)
    ends = xp.asarray(
        [-(-(i + 1) * size // out) for i in range(out)], dtype=xp.int64, device=device
    )
    starts, ends = xp.reshape(starts, (out, 1)), xp.reshape(ends, (out, 1))
    positions = xp.arange(size, dtype=xp.int64, device=device)
    inside = (positions >= starts) & (positions < ends)
    weights = 1.0 / xp.astype(ends - starts, like.dtype)
    return xp.where(inside, weights, constant(xp, 0.0, like))


def adaptive_avg_pool2d(input: Any, output_size: int | tuple[int | None, int | None]) -> Any:
    """2-D adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    Output position ``(i, j)`` averages rows ``floor(i * H / OH)`` up to
    ``ceil((i + 1) * H / OH)`` (exclusive) and likewise for columns, so the bins cover the
    input and may overlap.

    Parameters
    ----------
    input : array
        ``(N, C, H, W)``, or ``(C, H, W)`` for one unbatched image; floating point.
    output_size : int or (int or None, int or None)
        ``(OH, OW)``; an int means a square output, ``None`` keeps that input size.

    Returns
    -------
    array
        ``(N, C, OH, OW)``.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]], dtype="float32")
    >>> xpnet.to_numpy(F.adaptive_avg_pool2d(x, 1)).tolist()
    [[[[5.0]]]]
    >>> xpnet.to_numpy(F.adaptive_avg_pool2d(x, (2, None))).tolist()
    [[[[2.5, 3.5, 4.5], [5.5, 6.5, 7.5]]]]
    """
    return _adaptive_avg_pool2d_vjp(input, output_size)[0]


@defvjp(adaptive_avg_pool2d, "input")
def _adaptive_avg_pool2d_vjp(
    input: Any, output_size: int | tuple[int | None, int | None]
) -> tuple[Any, Pullback]:
    xp = namespace_of(input=input)
    check_ndim("input", input, (3, 4), "(N, C, H, W) or (C, H, W)")
    check_float(xp, "input", input)
    h, w = int(input.shape[-2]), int(input.shape[-1])
    if h == 0 or w == 0:
        raise ValueError(f"input: expected non-empty height and width, got {tuple(input.shape)}")
    oh, ow = _adaptive_output_size(output_size, (h, w))
    if (oh, ow) == (1, 1):
        # Global average pooling (a classifier's head): a plain mean is cheapest. (Equal
        # bins in general are not: a mean over two strided axes is slower than the matmuls.)
        y = xp.mean(input, axis=(-2, -1), keepdims=True)

        def global_pullback(dy: Any) -> tuple[Any]:
            spread = xp.broadcast_to(dy / (h * w), tuple(input.shape))
            return (xp.asarray(spread, copy=True),)  # a real array, not a broadcast view

        return y, global_pullback
    rows = _averaging_matrix(xp, oh, h, input)  # (OH, H)
    cols_t = xp.matrix_transpose(_averaging_matrix(xp, ow, w, input))  # (W, OW)
    y = rows @ input @ cols_t

    def pullback(dy: Any) -> tuple[Any]:
        return (xp.matrix_transpose(rows) @ dy @ xp.matrix_transpose(cols_t),)

    return y, pullback
