"""Adaptive pooling of 1, 2 and 3 spatial axes: torch's (possibly overlapping) bins.

Output position ``i`` of an axis of ``n`` entries pooled to ``o`` covers the entries
``floor(i * n / o)`` up to ``ceil((i + 1) * n / o)`` (exclusive).

* Average: one averaging matrix per axis, contracted with its axis (a global pool is a
  plain mean); the pullback contracts with the transposes.
* Max: each axis is gathered into its bins, padded to the widest bin by repeating the
  bin's last entry (which never beats the original: ties go to the first), and each box
  reduced. The pullback places each cotangent at its window's maximum and sends it back
  through one 0/1 matrix per axis (a scatter-add written as products, which the standard
  allows).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import array_api_compat

from ..._numbers import integer
from .._autodiff import Pullback, defvjp, primitive
from .._validation import check_float, check_ndim, constant, namespace_of

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
]

_LAYOUTS = {1: "(N, C, L) or (C, L)", 2: "(N, C, H, W) or (C, H, W)",
            3: "(N, C, D, H, W) or (C, D, H, W)"}  # fmt: skip
_KINDS = {1: "an int (or a 1-tuple)", 2: "an int or a pair", 3: "an int or 3"}


def _output_size(output_size: Any, size: tuple[int, ...]) -> tuple[int, ...]:
    rank = len(size)
    message = (
        f"output_size: expected {_KINDS[rank]} of non-negative ints (None keeps that axis), got "
    )
    if isinstance(output_size, bool):
        raise TypeError(message + repr(output_size))
    if integer(output_size) is not None:
        entries: list[Any] = [output_size] * rank
    elif isinstance(output_size, (tuple, list)) and len(output_size) == rank:
        entries = list(output_size)
    else:
        raise TypeError(message + repr(output_size))
    resolved = []
    for entry, n in zip(entries, size, strict=True):
        if entry is None:
            resolved.append(n)
        elif integer(entry) is None:
            raise TypeError(message + repr(output_size))
        elif entry < 0:
            raise ValueError(message + repr(output_size))
        else:
            resolved.append(operator.index(entry))
    return tuple(resolved)


def _checked(
    rank: int, input: Any, output_size: Any
) -> tuple[Any, tuple[int, ...], tuple[int, ...]]:
    xp = namespace_of(input=input)
    check_ndim("input", input, (rank + 1, rank + 2), _LAYOUTS[rank])
    check_float(xp, "input", input)
    size = tuple(int(n) for n in input.shape[-rank:])
    if min(size) == 0:
        raise ValueError(f"input: expected non-empty spatial axes, got shape {tuple(input.shape)}")
    return xp, size, _output_size(output_size, size)


def _bins(n: int, out: int) -> list[tuple[int, int]]:
    """torch's bin ``[start, end)`` of each of ``out`` positions over ``n`` entries."""
    return [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]


def _contract(xp: Any, x: Any, matrix: Any, axis: int) -> Any:
    """``x`` with its ``axis`` (negative, from the end) contracted with ``matrix``'s columns:
    an axis of ``matrix.shape[1]`` entries becomes one of ``matrix.shape[0]``."""
    if axis == -1:
        return x @ xp.matrix_transpose(matrix)
    shape = tuple(int(s) for s in x.shape)
    lead, trail = shape[: x.ndim + axis], shape[x.ndim + axis + 1 :]
    merged = xp.reshape(x, (*lead, shape[axis], math.prod(trail)))
    return xp.reshape(matrix @ merged, (*lead, int(matrix.shape[0]), *trail))


# --------------------------------------------------------------------------- average


def _averaging_matrix(xp: Any, out: int, size: int, like: Any) -> Any:
    """``(out, size)`` matrix whose row ``i`` averages torch's bin ``i``."""
    device = array_api_compat.device(like)
    bins = _bins(size, out)
    starts = xp.reshape(xp.asarray([b[0] for b in bins], dtype=xp.int64, device=device), (-1, 1))
    ends = xp.reshape(xp.asarray([b[1] for b in bins], dtype=xp.int64, device=device), (-1, 1))
    positions = xp.arange(size, dtype=xp.int64, device=device)
    inside = (positions >= starts) & (positions < ends)
    weights = 1.0 / xp.astype(ends - starts, like.dtype)
    return xp.where(inside, weights, constant(xp, 0.0, like))


def _adaptive_avg(rank: int, input: Any, output_size: Any) -> tuple[Any, Pullback]:
    xp, size, out = _checked(rank, input, output_size)
    axes = tuple(range(-rank, 0))
    if all(o == 1 for o in out):
        # Global average pooling (a classifier's head): a plain mean is cheapest. (Equal
        # bins in general are not: a mean over strided axes is slower than the products.)
        y = xp.mean(input, axis=axes, keepdims=True)
        count = math.prod(size)

        def global_pullback(dy: Any) -> tuple[Any]:
            spread = xp.broadcast_to(dy / count, tuple(input.shape))
            return (xp.asarray(spread, copy=True),)  # a real array, not a broadcast view

        return y, global_pullback
    matrices = [_averaging_matrix(xp, o, n, input) for o, n in zip(out, size, strict=True)]
    y = input
    for axis, matrix in zip(reversed(axes), reversed(matrices), strict=True):
        y = _contract(xp, y, matrix, axis)

    def pullback(dy: Any) -> tuple[Any]:
        for axis, matrix in zip(axes, matrices, strict=True):
            dy = _contract(xp, dy, xp.matrix_transpose(matrix), axis)
        return (dy,)

    return y, pullback


_AVG_DOC = """{rank}-D adaptive average pooling, as torch's ``adaptive_avg_pool{rank}d``.

    Output position ``i`` of each axis averages torch's bin: entries ``floor(i * n / o)``
    up to ``ceil((i + 1) * n / o)`` (exclusive), so the bins cover the input and may
    overlap.

    Parameters
    ----------
    input : array
        ``{layout}``; floating point.
    output_size : {kind} of int (or None)
        The output's spatial size; ``None`` keeps that axis's input size.

    Returns
    -------
    array
        The input's leading axes and ``output_size``.
"""


@primitive
def adaptive_avg_pool1d(input: Any, output_size: int | tuple[int]) -> Any:
    return _adaptive_avg(1, input, output_size)[0]


@primitive
def adaptive_avg_pool2d(input: Any, output_size: int | tuple[int | None, int | None]) -> Any:
    return _adaptive_avg(2, input, output_size)[0]


@primitive
def adaptive_avg_pool3d(
    input: Any, output_size: int | tuple[int | None, int | None, int | None]
) -> Any:
    return _adaptive_avg(3, input, output_size)[0]


# ------------------------------------------------------------------------------- max


def _bin_table(n: int, out: int) -> tuple[list[int], int]:
    """Each bin's entries, padded to the widest by repeating its last: a flat ``out * K``
    list of positions, and ``K``."""
    bins = _bins(n, out)
    widest = max(end - start for start, end in bins)
    table = [start + min(k, end - start - 1) for start, end in bins for k in range(widest)]
    return table, widest


def _adaptive_max(
    rank: int, input: Any, output_size: Any, return_indices: bool
) -> tuple[Any, Pullback]:
    xp, size, out = _checked(rank, input, output_size)
    if min(out) == 0:
        raise ValueError(f"output_size: expected positive sizes for max pooling, got {out}")
    device = array_api_compat.device(input)
    unbatched = input.ndim == rank + 1
    x = xp.expand_dims(input, axis=0) if unbatched else input
    lead = tuple(int(s) for s in x.shape[:2])
    tables, widths = zip(*(_bin_table(n, o) for n, o in zip(size, out, strict=True)), strict=True)
    gathered = x
    for axis, table in enumerate(tables):
        index = xp.asarray(table, dtype=xp.int64, device=device)
        gathered = xp.take(gathered, index, axis=2 + axis)
    # (N, C, O1, K1, ..., Or, Kr) -> (N, C, O1, ..., Or, K1 * ... * Kr)
    split = [v for o, k in zip(out, widths, strict=True) for v in (o, k)]
    boxes = xp.reshape(gathered, (*lead, *split))
    order = (0, 1, *range(2, 2 + 2 * rank, 2), *range(3, 3 + 2 * rank, 2))
    box = math.prod(widths)
    boxes = xp.reshape(xp.permute_dims(boxes, order), (*lead, *out, box))
    # torch's choice: the first maximal entry, or the first NaN (which makes the max NaN).
    nan = xp.isnan(boxes)
    has_nan = xp.any(nan, axis=-1)
    first_nan = xp.argmax(xp.astype(nan, xp.int8), axis=-1)
    finite = xp.where(nan, constant(xp, -math.inf, boxes), boxes)
    pick = xp.where(has_nan, first_nan, xp.argmax(finite, axis=-1))
    y = xp.max(boxes, axis=-1)
    output: Any = y[0, ...] if unbatched else y
    if return_indices:
        indices = _flat_indices(xp, pick, tables, widths, out, size, device)
        output = (output, indices[0, ...] if unbatched else indices)
    scatters = [_scatter_matrix(xp, table, n, x) for table, n in zip(tables, size, strict=True)]

    def pullback(dy: Any) -> tuple[Any]:
        dy = xp.expand_dims(dy, axis=0) if unbatched else dy
        positions = xp.arange(box, dtype=xp.int64, device=device)
        chosen = xp.where(
            xp.expand_dims(pick, axis=-1) == positions,
            xp.expand_dims(dy, axis=-1),
            constant(xp, 0.0, dy),
        )  # (N, C, O1, ..., Or, box)
        spread = xp.reshape(chosen, (*lead, *out, *widths))
        inverse = [0] * len(order)
        for position, axis in enumerate(order):
            inverse[axis] = position
        spread = xp.reshape(
            xp.permute_dims(spread, tuple(inverse)),
            (*lead, *(o * k for o, k in zip(out, widths, strict=True))),
        )
        for axis, scatter in enumerate(scatters):
            spread = _contract(xp, spread, scatter, axis - rank)
        return (spread[0, ...] if unbatched else spread,)

    return output, pullback


def _scatter_matrix(xp: Any, table: list[int], size: int, like: Any) -> Any:
    """``(size, len(table))`` 0/1 matrix sending gathered entry ``j`` back to ``table[j]``."""
    device = array_api_compat.device(like)
    sources = xp.asarray(table, dtype=xp.int64, device=device)
    positions = xp.reshape(xp.arange(size, dtype=xp.int64, device=device), (size, 1))
    return xp.astype(positions == sources, like.dtype)


def _flat_indices(
    xp: Any, pick: Any, tables: Any, widths: Any, out: tuple[int, ...], size: tuple[int, ...],
    device: Any,
) -> Any:  # fmt: skip
    """torch's flat index (row-major over the spatial axes) of each chosen entry."""
    rank = len(out)
    flat = None
    remaining = pick
    for axis in reversed(range(rank)):
        k = remaining % widths[axis]
        remaining = remaining // widths[axis]
        shape = [1] * rank
        shape[axis] = out[axis]
        bins = xp.reshape(xp.arange(out[axis], dtype=xp.int64, device=device), tuple(shape))
        table = xp.asarray(tables[axis], dtype=xp.int64, device=device)
        source = xp.take(table, xp.reshape(bins * widths[axis] + k, (-1,)), axis=0)
        source = xp.reshape(source, tuple(k.shape)) * math.prod(size[axis + 1 :])
        flat = source if flat is None else flat + source
    return flat


_MAX_DOC = """{rank}-D adaptive max pooling, as torch's ``adaptive_max_pool{rank}d``.

    Output position ``i`` of each axis is the maximum over torch's bin: entries
    ``floor(i * n / o)`` up to ``ceil((i + 1) * n / o)`` (exclusive).

    Parameters
    ----------
    input : array
        ``{layout}``; floating point.
    output_size : {kind} of positive int (or None)
        The output's spatial size; ``None`` keeps that axis's input size.
    return_indices : bool, default False
        Also return each output's flat index into the input's spatial axes (row-major,
        int64), as torch does.

    Returns
    -------
    array, or (array, array) if ``return_indices``
        The input's leading axes and ``output_size``. Ties go to the first maximal entry in
        row-major order, where the pullback sends the gradient; a bin holding NaN gives
        NaN (and the index of its first NaN).
"""


@primitive
def adaptive_max_pool1d(
    input: Any, output_size: int | tuple[int], return_indices: bool = False
) -> Any:
    return _adaptive_max(1, input, output_size, return_indices)[0]


@primitive
def adaptive_max_pool2d(
    input: Any, output_size: int | tuple[int | None, int | None], return_indices: bool = False
) -> Any:
    return _adaptive_max(2, input, output_size, return_indices)[0]


@primitive
def adaptive_max_pool3d(
    input: Any,
    output_size: int | tuple[int | None, int | None, int | None],
    return_indices: bool = False,
) -> Any:
    return _adaptive_max(3, input, output_size, return_indices)[0]


def _avg_rule(rank: int) -> Any:
    def rule(input: Any, output_size: Any) -> tuple[Any, Pullback]:
        return _adaptive_avg(rank, input, output_size)

    return rule


def _max_rule(rank: int) -> Any:
    def rule(input: Any, output_size: Any, return_indices: bool = False) -> tuple[Any, Pullback]:
        return _adaptive_max(rank, input, output_size, return_indices)

    return rule


for _rank, _avg, _max in (
    (1, adaptive_avg_pool1d, adaptive_max_pool1d),
    (2, adaptive_avg_pool2d, adaptive_max_pool2d),
    (3, adaptive_avg_pool3d, adaptive_max_pool3d),
):
    _avg.__doc__ = _AVG_DOC.format(rank=_rank, layout=_LAYOUTS[_rank], kind=_KINDS[_rank])
    _max.__doc__ = _MAX_DOC.format(rank=_rank, layout=_LAYOUTS[_rank], kind=_KINDS[_rank])
    defvjp(_avg, "input")(_avg_rule(_rank))
    defvjp(_max, "input")(_max_rule(_rank))

adaptive_avg_pool2d.__doc__ = (
    (adaptive_avg_pool2d.__doc__ or "")
    + """
    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]], dtype="float32")
    >>> xpnet.to_numpy(F.adaptive_avg_pool2d(x, 1)).tolist()
    [[[[5.0]]]]
    >>> xpnet.to_numpy(F.adaptive_avg_pool2d(x, (2, None))).tolist()
    [[[[2.5, 3.5, 4.5], [5.5, 6.5, 7.5]]]]
"""
)
