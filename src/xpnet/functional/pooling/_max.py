"""Max pooling: the first maximum of each window (torch's tie rule, NaN counting as
maximal), its optional indices, and its pullback."""

from __future__ import annotations

from typing import Any

import array_api_compat

from .. import _numba
from .._autodiff import Pullback, defvjp, primitive
from .._constants import cached_constant
from .._select import all_finite, keep_where, multiplies_masks
from .._windows import crop2d, fold_windows, pad2d, window_slices
from ._native import native_max_pool2d, native_max_pool2d_inference
from ._plan import IntPair, PoolPlan, batched, unbatched, untile, window_plan

__all__ = ["max_pool2d"]


def _int_array(xp: Any, values: list[Any], like: Any) -> Any:
    return xp.asarray(values, dtype=xp.int64, device=array_api_compat.device(like))


def _first_inside(plan: PoolPlan, like: Any) -> tuple[Any, Any]:
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


def _max_forward(plan: PoolPlan, x: Any, return_indices: bool) -> tuple[Any, Any, Any]:
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


def _tile_planes(plan: PoolPlan, x: Any) -> Any:
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


def _tiled_max(plan: PoolPlan, x: Any) -> Any:
    """The maximum over tiling windows, for inference: the window's rows first (maxima of
    ``kH`` slices of whole rows, contiguous runs), then its columns, on ``kH`` times fewer
    rows (measured with NumPy, 2x2 on 256x6x24x24: 0.40 ms against 0.81 for de-interleaving
    the planes and reducing them, which the pullback needs and inference does not)."""
    xp = plan.xp
    (oh, ow), (kh, kw) = plan.out_size, plan.kernel
    rows = x[..., 0 : oh * kh : kh, : ow * kw]
    for i in range(1, kh):
        rows = xp.maximum(rows, x[..., i : oh * kh : kh, : ow * kw])
    y = rows[..., 0::kw]
    for j in range(1, kw):
        y = xp.maximum(y, rows[..., j::kw])
    # A 1x1 window would hand back a view of the input: ops return arrays of their own.
    return xp.asarray(y, copy=True) if kh * kw == 1 else y


def _tiled_max_cotangent(plan: PoolPlan, planes: Any, y: Any, dy: Any) -> Any:
    """The pullback of max over :func:`_tile_planes`: each cotangent goes to its window's
    first maximal element in row-major order (a NaN counts as maximal, since it made the
    window's maximum NaN), as in :func:`_max_forward`."""
    xp = plan.xp
    kh, kw = plan.kernel
    finite = multiplies_masks(xp, dy) and all_finite(xp, dy)  # checked once for every plane
    taken, rows = None, []
    for i in range(kh):
        row = []
        for j in range(kw):
            plane = planes[i * kw + j, ...]
            hit = (plane == y) | xp.isnan(plane)
            first = hit if taken is None else hit & ~taken
            taken = hit if taken is None else taken | hit
            row.append(keep_where(xp, first, dy, finite))
        rows.append(xp.stack(row, axis=-1))  # (N, C, OH, OW, kW)
    return untile(plan, xp.stack(rows, axis=3))  # (N, C, OH, kH, OW, kW)


def _tiled_argmax_cotangent(plan: PoolPlan, tap: Any, dy: Any) -> Any:
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
    planes = keep_where(xp, xp.expand_dims(tap, axis=0) == offsets, xp.expand_dims(dy, axis=0))
    n, c = dy.shape[0], dy.shape[1]
    blocks = xp.reshape(planes, (kh, kw, n, c, oh, ow))
    return untile(plan, xp.permute_dims(blocks, (2, 3, 4, 0, 5, 1)))


def _max_cotangent(plan: PoolPlan, dy: Any, tap: Any) -> Any:
    """Send each output's cotangent to its window's chosen element (4-D in, 4-D out)."""
    xp = plan.xp
    kh, kw = plan.kernel
    offsets = xp.arange(kh * kw, dtype=xp.int64, device=array_api_compat.device(dy))
    hot = xp.expand_dims(tap, axis=2) == xp.reshape(offsets, (kh * kw, 1, 1))
    cols = keep_where(xp, hot, xp.expand_dims(dy, axis=2))  # (N, C, kH * kW, OH, OW)
    if plan.tiles:
        # Disjoint windows: interleaving the offsets with the positions is the whole col2im.
        n, c, oh, ow = dy.shape
        cols = xp.reshape(cols, (n, c, kh, kw, oh, ow))
        return untile(plan, xp.permute_dims(cols, (0, 1, 4, 2, 5, 3)))
    full = fold_windows(xp, cols, plan.padded, plan.kernel, plan.stride, plan.dilation)
    return crop2d(full, plan.pads)


_KERNELS = f"{__package__}._compiled_kernels"


def _takes_compiled(plan: PoolPlan, x: Any) -> bool:
    """Tiling windows on NumPy with Numba (see :mod:`xpnet.functional._numba`): one
    compiled pass forward and one back, where the standard path de-interleaves the planes
    and selects per offset. Offsets are kept as uint8."""
    return (
        plan.tiles
        and plan.kernel[0] * plan.kernel[1] <= 256
        and _numba.applies(plan.xp, x, kernels=_KERNELS)
    )


def _compiled_tiled_max(plan: PoolPlan, x: Any, record: bool) -> tuple[Any, Any]:
    """The tiles' maxima of a 4-D ``x`` and, with ``record``, each one's offset (else
    ``None``)."""
    n, c, height, width = (int(s) for s in x.shape)
    (oh, ow), planes = plan.out_size, n * c
    xp = plan.xp
    source = _numba.contiguous(xp, x, (planes, height, width))
    y = xp.empty((planes, oh, ow), dtype=source.dtype)
    taps = xp.empty((planes, oh, ow) if record else (1, 1, 1), dtype=xp.uint8)
    kernel = _numba.load(_KERNELS).tiled_max
    args = (source, plan.kernel, y, taps, record)
    _numba.run_shared(kernel, args, _numba.shares(planes, int(source.size)))
    return y.reshape(n, c, oh, ow), (taps if record else None)


def _compiled_tiled_max_pullback(plan: PoolPlan, taps: Any, dy: Any) -> Any:
    n, c, oh, ow = (int(s) for s in dy.shape)
    (height, width), planes = plan.size, n * c
    xp = plan.xp
    grad = _numba.contiguous(xp, dy, (planes, oh, ow))
    dx = xp.empty((planes, height, width), dtype=grad.dtype)
    kernel = _numba.load(_KERNELS).tiled_max_pullback
    _numba.run_shared(kernel, (grad, taps, plan.kernel, dx), _numba.shares(planes, dx.size))
    return dx.reshape(n, c, height, width)


@primitive
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
    plan = window_plan(input, kernel_size, stride, padding, dilation, ceil_mode)
    native = native_max_pool2d_inference(plan, input, bool(ceil_mode))
    if native is not None:
        return native
    xp = plan.xp
    if _takes_compiled(plan, input):
        return unbatched(plan, _compiled_tiled_max(plan, batched(plan, input), False)[0])
    if plan.tiles:
        return unbatched(plan, _tiled_max(plan, batched(plan, input)))
    padded = pad2d(xp, batched(plan, input), plan.pads, float("-inf"))
    slices = window_slices(padded, plan.kernel, plan.stride, plan.dilation, plan.out_size)
    y = slices[0]
    for candidate in slices[1:]:
        y = xp.maximum(y, candidate)
    return unbatched(plan, y)


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
    plan = window_plan(input, kernel_size, stride, padding, dilation, ceil_mode)
    native = native_max_pool2d(plan, input, bool(ceil_mode), bool(return_indices))
    if native is not None:
        return native
    if not return_indices and _takes_compiled(plan, input):
        y, taps = _compiled_tiled_max(plan, batched(plan, input), True)

        def compiled_pullback(dy: Any) -> tuple[Any]:
            cotangent = _compiled_tiled_max_pullback(plan, taps, batched(plan, dy))
            return (unbatched(plan, cotangent),)

        return unbatched(plan, y), compiled_pullback
    if plan.tiles and not return_indices and plan.profile.launch_bound:
        planes = _tile_planes(plan, batched(plan, input))
        y, tap = plan.xp.max(planes, axis=0), plan.xp.argmax(planes, axis=0)
        planes = None  # the pullback needs only the argmax

        def argmax_pullback(dy: Any) -> tuple[Any]:
            cotangent = _tiled_argmax_cotangent(plan, tap, batched(plan, dy))
            return (unbatched(plan, cotangent),)

        return unbatched(plan, y), argmax_pullback
    if plan.tiles and not return_indices:
        # On a CPU: a running first maximum in the pullback (argmax over the planes is 6-85x
        # slower there than elementwise passes, measured with NumPy and torch).
        planes = _tile_planes(plan, batched(plan, input))
        y = plan.xp.max(planes, axis=0)

        def tiled_pullback(dy: Any) -> tuple[Any]:
            cotangent = _tiled_max_cotangent(plan, planes, y, batched(plan, dy))
            return (unbatched(plan, cotangent),)

        return unbatched(plan, y), tiled_pullback
    y, tap, indices = _max_forward(plan, batched(plan, input), bool(return_indices))
    output = unbatched(plan, y)
    if indices is not None:
        output = (output, unbatched(plan, indices))

    def pullback(dy: Any) -> tuple[Any]:
        return (unbatched(plan, _max_cotangent(plan, batched(plan, dy), tap)),)

    return output, pullback
