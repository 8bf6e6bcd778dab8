"""Average pooling: window sums taken separably (rows, then columns), torch's divisors,
and the adjoint that spreads each window's gradient back."""

from __future__ import annotations

from typing import Any

import array_api_compat

from ..._numbers import integer
from .._autodiff import Pullback, defvjp, primitive
from .._validation import constant
from .._windows import crop2d, fold_windows, pad2d
from ._native import native_avg_pool2d
from ._plan import IntPair, PoolPlan, batched, unbatched, untile, window_plan

__all__ = ["avg_pool2d"]


def _check_divisor(divisor_override: Any) -> None:
    message = f"divisor_override: expected a non-zero int or None, got {divisor_override!r}"
    if divisor_override is None:
        return
    if integer(divisor_override) is None:
        raise TypeError(message)
    if divisor_override == 0:
        raise ValueError(message)


def _avg_divisor(
    plan: PoolPlan, like: Any, count_include_pad: bool, divisor_override: int | None
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


def _window_sums(plan: PoolPlan, x: Any) -> Any:
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


def _window_sums_adjoint(plan: PoolPlan, g: Any) -> Any:
    """Adjoint of :func:`_window_sums`: every input element gets the sum of its windows' g."""
    xp = plan.xp
    (kh, kw), (sh, sw), (oh, ow) = plan.kernel, plan.stride, plan.out_size
    n, c = g.shape[0], g.shape[1]
    if plan.tiles:
        spread = xp.broadcast_to(xp.reshape(g, (n, c, oh, 1, ow, 1)), (n, c, oh, kh, ow, kw))
        return untile(plan, spread)
    height, width = plan.padded
    cols = xp.broadcast_to(xp.expand_dims(g, axis=2), (n, c, kw, oh, ow))
    rows = fold_windows(xp, cols, (oh, width), (1, kw), (1, sw), (1, 1))
    cols = xp.broadcast_to(xp.expand_dims(rows, axis=2), (n, c, kh, oh, width))
    full = fold_windows(xp, cols, (height, width), (kh, 1), (sh, 1), (1, 1))
    return crop2d(full, plan.pads)


@primitive
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
    plan = window_plan(input, kernel_size, stride, padding, 1, ceil_mode)
    _check_divisor(divisor_override)
    native = native_avg_pool2d(
        plan, input, bool(ceil_mode), bool(count_include_pad), divisor_override
    )
    if native is not None:
        return native
    divisor = _avg_divisor(plan, input, bool(count_include_pad), divisor_override)
    y = _window_sums(plan, batched(plan, input)) / divisor

    def pullback(dy: Any) -> tuple[Any]:
        return (unbatched(plan, _window_sums_adjoint(plan, batched(plan, dy) / divisor)),)

    return unbatched(plan, y), pullback
