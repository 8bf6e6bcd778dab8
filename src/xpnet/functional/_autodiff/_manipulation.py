"""Pullbacks of the standard's shape functions (reshape, permute_dims, expand_dims,
squeeze, broadcast_to, concat, stack, flip, roll, ...), ``take``, ``take_along_axis``,
``sort`` and ``diff``, and ``asarray`` / ``to_device`` of tracked arrays.

The standard has no scatter-add: where a pullback must add cotangents at chosen
positions (``take``, ``repeat`` with per-element counts) it multiplies by a one-hot
matrix, as the ops of :mod:`xpnet.functional` do.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from ._common import device_of, emit, emit_many, raw, shape_of, sum_to
from ._namespace import register
from ._tape import OPERATORS, DifferentiationError, TrackedArray

__all__ = ["one_hot_rows", "view"]


def view(result: TrackedArray, *sources: Any) -> TrackedArray:
    """Mark ``result`` and ``sources`` as sharing memory (NumPy and torch return views for
    these functions), so that an in-place update of either is refused."""
    result._aliased = True
    for source in sources:
        if type(source) is TrackedArray:
            source._aliased = True
    return result


def _axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


@register("reshape")
def _reshape(xp: Any, x: Any, /, shape: tuple[int, ...], *, copy: bool | None = None) -> Any:
    value = raw(x)
    y = xp.reshape(value, shape) if copy is None else xp.reshape(value, shape, copy=copy)
    source = shape_of(value)
    return view(emit("reshape", xp, y, [(x, lambda g: xp.reshape(g, source))]), x)


@register("permute_dims")
def _permute_dims(xp: Any, x: Any, /, axes: tuple[int, ...]) -> Any:
    value = raw(x)
    y = xp.permute_dims(value, axes)
    order = [_axis(a, value.ndim) for a in axes]
    inverse = tuple(sorted(range(len(order)), key=order.__getitem__))
    return view(emit("permute_dims", xp, y, [(x, lambda g: xp.permute_dims(g, inverse))]), x)


@register("matrix_transpose")
def _matrix_transpose(xp: Any, x: Any, /) -> Any:
    value = raw(x)
    y = xp.matrix_transpose(value)
    return view(emit("matrix_transpose", xp, y, [(x, xp.matrix_transpose)]), x)


def _transpose(xp: Any, x: Any) -> Any:
    """``x.T`` (the standard defines it for 2-D arrays; a 1-D one is itself)."""
    value = raw(x)
    if value.ndim < 2:
        return x
    axes = tuple(range(value.ndim - 1, -1, -1))
    return _permute_dims(xp, x, axes)


OPERATORS["T"] = _transpose
OPERATORS["matrix_transpose"] = _matrix_transpose


@register("expand_dims")
def _expand_dims(xp: Any, x: Any, /, *, axis: Any = 0) -> Any:
    value = raw(x)
    y = xp.expand_dims(value, axis=axis)
    source = shape_of(value)
    return view(emit("expand_dims", xp, y, [(x, lambda g: xp.reshape(g, source))]), x)


@register("squeeze")
def _squeeze(xp: Any, x: Any, /, axis: Any) -> Any:
    value = raw(x)
    y = xp.squeeze(value, axis=axis)
    source = shape_of(value)
    return view(emit("squeeze", xp, y, [(x, lambda g: xp.reshape(g, source))]), x)


@register("broadcast_to")
def _broadcast_to(xp: Any, x: Any, /, shape: tuple[int, ...]) -> Any:
    value = raw(x)
    y = xp.broadcast_to(value, shape)
    source = shape_of(value)
    return view(emit("broadcast_to", xp, y, [(x, lambda g: sum_to(xp, g, source))]), x)


@register("broadcast_arrays")
def _broadcast_arrays(xp: Any, *arrays: Any) -> Any:
    values = [raw(a) for a in arrays]
    ys = list(xp.broadcast_arrays(*values))

    def pullback_for(i: int, source: tuple[int, ...]) -> Any:
        def pullback(gs: Any) -> Any:
            g = gs[i]
            return None if g is None else sum_to(xp, g, source)

        return pullback

    links = [
        (a, pullback_for(i, shape_of(v)))
        for i, (a, v) in enumerate(zip(arrays, values, strict=True))
    ]
    outputs = emit_many("broadcast_arrays", xp, ys, links)
    return [view(out, *arrays) for out in outputs]


def _along(ndim: int, axis: int, index: Any) -> tuple[Any, ...]:
    """An index that takes ``index`` along ``axis`` of an ``ndim``-D array."""
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


def _piece(key: Any) -> Any:
    return lambda g: g[key]


def _flat_piece(xp: Any, piece: slice, shape: tuple[int, ...]) -> Any:
    return lambda g: xp.reshape(g[piece], shape)


@register("concat")
def _concat(xp: Any, arrays: Any, /, *, axis: int | None = 0) -> Any:
    values = [raw(a) for a in arrays]
    y = xp.concat(values, axis=axis)
    links = []
    start = 0
    for array, value in zip(arrays, values, strict=True):
        shape = shape_of(value)
        if axis is None:
            size = math.prod(shape)
            links.append((array, _flat_piece(xp, slice(start, start + size), shape)))
        else:
            along = _axis(axis, value.ndim)
            size = shape[along]
            key = _along(value.ndim, along, slice(start, start + size))
            links.append((array, _piece(key)))
        start += size
    return emit("concat", xp, y, links)


@register("stack")
def _stack(xp: Any, arrays: Any, /, *, axis: int = 0) -> Any:
    values = [raw(a) for a in arrays]
    y = xp.stack(values, axis=axis)
    along = _axis(axis, y.ndim)

    def pick(i: int) -> Any:
        key = _along(y.ndim, along, i)
        return lambda g: g[key]

    return emit("stack", xp, y, [(array, pick(i)) for i, array in enumerate(arrays)])


@register("unstack")
def _unstack(xp: Any, x: Any, /, *, axis: int = 0) -> Any:
    value = raw(x)
    ys = list(xp.unstack(value, axis=axis))
    along = _axis(axis, value.ndim)

    def pullback(gs: Any) -> Any:
        filled = [xp.zeros_like(y) if g is None else g for g, y in zip(gs, ys, strict=True)]
        return xp.stack(filled, axis=along)

    return tuple(view(out, x) for out in emit_many("unstack", xp, ys, [(x, pullback)]))


@register("flip")
def _flip(xp: Any, x: Any, /, *, axis: Any = None) -> Any:
    value = raw(x)
    y = xp.flip(value, axis=axis)
    return view(emit("flip", xp, y, [(x, lambda g: xp.flip(g, axis=axis))]), x)


@register("roll")
def _roll(xp: Any, x: Any, /, shift: Any, *, axis: Any = None) -> Any:
    value = raw(x)
    y = xp.roll(value, shift, axis=axis)
    back = -shift if isinstance(shift, int) else tuple(-s for s in shift)
    return emit("roll", xp, y, [(x, lambda g: xp.roll(g, back, axis=axis))])


@register("moveaxis")
def _moveaxis(xp: Any, x: Any, source: Any, destination: Any, /) -> Any:
    value = raw(x)
    y = xp.moveaxis(value, source, destination)
    return view(emit("moveaxis", xp, y, [(x, lambda g: xp.moveaxis(g, destination, source))]), x)


def one_hot_rows(xp: Any, indices: Any, size: int, dtype: Any) -> Any:
    """``(len(indices), size)``: row ``k`` is 1 at column ``indices[k]`` (negative indices
    counted from the end), 0 elsewhere."""
    indices = xp.where(indices < 0, indices + size, indices)
    columns = xp.arange(size, dtype=indices.dtype, device=device_of(indices))
    return xp.astype(indices[:, None] == columns[None, :], dtype)


def _gather_pullback(xp: Any, g: Any, indices_flat: Any, size: int, axis: int, count: int) -> Any:
    """The adjoint of taking ``indices_flat`` (``count`` of them) along ``axis`` of an axis
    of ``size``: ``g`` has ``count`` entries along ``axis``; entries taken from the same
    position add up."""
    hot = one_hot_rows(xp, indices_flat, size, g.dtype)  # (count, size)
    moved = xp.moveaxis(g, axis, -1)
    return xp.moveaxis(moved @ hot, -1, axis)


@register("take")
def _take(xp: Any, x: Any, indices: Any, /, *, axis: int | None = None) -> Any:
    value, index = raw(x), raw(indices)
    y = xp.take(value, index, axis=axis)
    shape = shape_of(value)

    def pullback(g: Any) -> Any:
        if axis is None:  # a 1-D x
            return _gather_pullback(xp, g, index, shape[0], 0, index.shape[0])
        along = _axis(axis, value.ndim)
        return _gather_pullback(xp, g, index, shape[along], along, index.shape[0])

    return emit("take", xp, y, [(x, pullback)])


@register("take_along_axis")
def _take_along_axis(xp: Any, x: Any, indices: Any, /, *, axis: int = -1) -> Any:
    value, index = raw(x), raw(indices)
    y = xp.take_along_axis(value, index, axis=axis)
    shape = shape_of(value)
    along = _axis(axis, value.ndim)

    def pullback(g: Any) -> Any:
        size = shape[along]
        moved_g = xp.moveaxis(g, along, -1)  # (..., k)
        moved_index = xp.moveaxis(index, along, -1)
        moved_index = xp.where(moved_index < 0, moved_index + size, moved_index)
        columns = xp.arange(size, dtype=index.dtype, device=device_of(index))
        hot = xp.astype(moved_index[..., None] == columns, g.dtype)  # (..., k, size)
        summed = xp.sum(moved_g[..., None] * hot, axis=-2)  # (..., size)
        moved_shape = (*tuple(s for i, s in enumerate(shape) if i != along), size)
        return xp.moveaxis(sum_to(xp, summed, moved_shape), -1, along)

    return emit("take_along_axis", xp, y, [(x, pullback)])


@register("repeat")
def _repeat(xp: Any, x: Any, repeats: Any, /, *, axis: int | None = None) -> Any:
    value, counts = raw(x), raw(repeats)
    y = xp.repeat(value, counts, axis=axis)
    shape = shape_of(value)

    def pullback(g: Any) -> Any:
        along = 0 if axis is None else _axis(axis, value.ndim)
        source = (math.prod(shape),) if axis is None else shape
        size = source[along]
        if isinstance(counts, int):
            # Each element's copies sit together: split the axis and sum the copies.
            split = (*source[:along], size, counts, *source[along + 1 :])
            summed = xp.sum(xp.reshape(g, split), axis=along + 1)
        else:
            owners = xp.repeat(
                xp.arange(size, dtype=counts.dtype, device=device_of(counts)), counts
            )
            summed = _gather_pullback(xp, g, owners, size, along, owners.shape[0])
        return xp.reshape(summed, shape)

    return emit("repeat", xp, y, [(x, pullback)])


@register("tile")
def _tile(xp: Any, x: Any, repetitions: tuple[int, ...], /) -> Any:
    value = raw(x)
    y = xp.tile(value, repetitions)
    shape = shape_of(value)

    def pullback(g: Any) -> Any:
        ndim = max(len(shape), len(repetitions))
        padded = (1,) * (ndim - len(shape)) + shape
        reps = (1,) * (ndim - len(repetitions)) + tuple(repetitions)
        interleaved = tuple(n for pair in zip(reps, padded, strict=True) for n in pair)
        summed = xp.sum(xp.reshape(g, interleaved), axis=tuple(range(0, 2 * ndim, 2)))
        return xp.reshape(summed, shape)

    return emit("tile", xp, y, [(x, pullback)])


def _triangle(name: str) -> Any:
    def rule(xp: Any, x: Any, /, *, k: int = 0) -> Any:
        y = getattr(xp, name)(raw(x), k=k)
        return emit(name, xp, y, [(x, lambda g: getattr(xp, name)(g, k=k))])

    rule.__name__ = name
    return rule


register("tril")(_triangle("tril"))
register("triu")(_triangle("triu"))


@register("sort")
def _sort(
    xp: Any, x: Any, /, *, axis: int = -1, descending: bool = False, stable: bool = True
) -> Any:
    value = raw(x)
    order = xp.argsort(value, axis=axis, descending=descending, stable=stable)
    y = xp.take_along_axis(value, order, axis=axis)
    # Sending each cotangent back to where its element came from is taking along the
    # inverse permutation.
    return emit(
        "sort",
        xp,
        y,
        [(x, lambda g: xp.take_along_axis(g, xp.argsort(order, axis=axis), axis=axis))],
    )


def _difference_pullback(xp: Any, g: Any, along: int) -> Any:
    """The adjoint of ``a[1:] - a[:-1]`` along ``along``."""
    zero = xp.zeros_like(g[_along(g.ndim, along, slice(0, 1))])
    return xp.concat([zero, g], axis=along) - xp.concat([g, zero], axis=along)


@register("diff")
def _diff(
    xp: Any, x: Any, /, *, axis: int = -1, n: int = 1, prepend: Any = None, append: Any = None
) -> Any:
    value, before, after = raw(x), raw(prepend), raw(append)
    y = xp.diff(value, axis=axis, n=n, prepend=before, append=after)
    along = _axis(axis, value.ndim)
    pieces = [p for p in (before, value, after) if p is not None]
    lengths = [p.shape[along] for p in pieces]

    def joined_grad(g: Any) -> Any:
        for _ in range(n):
            g = _difference_pullback(xp, g, along)
        return g

    def part(which: int) -> Any:
        start = sum(lengths[:which])
        key = _along(value.ndim, along, slice(start, start + lengths[which]))
        return lambda g: joined_grad(g)[key]

    links = []
    index = 0
    for original, piece in ((prepend, before), (x, value), (append, after)):
        if piece is None:
            continue
        links.append((original, part(index)))
        index += 1
    return emit("diff", xp, y, links)


# ------------------------------------------------------------ asarray and to_device


def _to_device(xp: Any, x: Any, device: Any, stream: Any = None) -> Any:
    value = raw(x)
    source = device_of(value)
    y = array_api_compat.to_device(value, device, stream=stream)
    return emit("to_device", xp, y, [(x, lambda g: array_api_compat.to_device(g, source))])


OPERATORS["to_device"] = _to_device


@register("asarray")
def _asarray(
    xp: Any, obj: Any, /, *, dtype: Any = None, device: Any = None, copy: bool | None = None
) -> Any:
    if type(obj) is TrackedArray:
        result = obj
        if dtype is not None and dtype != obj.dtype:
            from ._elementwise import _astype

            result = _astype(xp, result, dtype)
        if device is not None and device != result.device:
            result = _to_device(xp, result, device)
        return result
    if isinstance(obj, list | tuple) and any(
        type(item) is TrackedArray and item._node is not None for item in obj
    ):
        raise DifferentiationError(
            "asarray: a list holding arrays that carry a gradient cannot be converted "
            "with its gradient; use xp.stack"
        )
    if isinstance(obj, list | tuple):
        obj = type(obj)(raw(item) for item in obj)
    return TrackedArray(xp.asarray(obj, dtype=dtype, device=device, copy=copy), None, 0, xp)
