"""Adaptive average pooling: torch's (possibly overlapping) bins as two averaging matrices,
or a plain mean for a global pool."""

from __future__ import annotations

from typing import Any

import array_api_compat

from .._autodiff import Pullback, defvjp, primitive
from .._validation import check_float, check_ndim, constant, namespace_of

__all__ = ["adaptive_avg_pool2d"]


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


@primitive
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
