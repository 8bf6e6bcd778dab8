"""Indexing a tracked array (``x[key]``), refusing ``x[key] = v``, augmented assignment,
and NumPy ufuncs called on tracked arrays.

The pullback of ``x[key]`` puts the cotangent back where the elements came from, zeros
elsewhere. The standard has no scatter and no in-place write, so it is built functionally:
for basic indexing (integers, slices of any step, ``None``, ``...``) by padding with
zeros axis by axis (``concat``), stuffing zeros between the elements of a strided slice
(``stack`` and ``reshape``); for one integer array by a one-hot product (as ``take``); for
a boolean mask by gathering the selected elements back to their positions.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from ._common import carries_gradient, device_of, emit, raw, shape_of
from ._manipulation import _gather_pullback, view
from ._namespace import recording_namespace
from ._tape import OPERATORS, DifferentiationError, TrackedArray

__all__: list[str] = []


def _is_index_array(item: Any) -> bool:
    """An array used as an index (NumPy's integer scalars are plain integers here)."""
    if item is None or item is Ellipsis or isinstance(item, slice | numbers.Integral):
        return False
    return hasattr(item, "shape") and hasattr(item, "dtype")


def _raw_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(raw(k) for k in key)
    return raw(key)


def _expand_ellipsis(items: tuple[Any, ...], ndim: int) -> tuple[Any, ...]:
    consumed = sum(1 for item in items if item is not None and item is not Ellipsis)
    at = next((i for i, item in enumerate(items) if item is Ellipsis), None)
    if at is None:
        return items + (slice(None),) * (ndim - consumed)
    return items[:at] + (slice(None),) * (ndim - consumed) + items[at + 1 :]


def _basic_plan(
    items: tuple[Any, ...], shape: tuple[int, ...]
) -> list[tuple[int, int, int]] | None:
    """For basic indexing: per axis of ``x``, ``(first, step, count)`` of the positions
    read (``step`` negative for reversed slices), or None if ``items`` are not basic."""
    plan = []
    axis = 0
    for item in items:
        if item is None:
            continue
        n = shape[axis]
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            count = len(range(start, stop, step))
            plan.append((start, step, count))
        elif isinstance(item, numbers.Integral):
            i = int(item)
            plan.append((i + n if i < 0 else i, 1, 1))
        else:
            return None
        axis += 1
    return plan


def _embed_basic(xp: Any, g: Any, shape: tuple[int, ...], plan: list[tuple[int, int, int]]) -> Any:
    """The cotangent of ``x`` for basic indexing: ``g`` (reshaped to one axis per axis of
    ``x``) placed at the positions read, zeros elsewhere."""
    kept = tuple(count for _, _, count in plan)
    g = xp.reshape(g, kept)
    if 0 in kept:
        return xp.zeros(shape, dtype=g.dtype, device=device_of(g))
    for axis, ((first, step, count), n) in enumerate(zip(plan, shape, strict=True)):
        if step < 0:  # read backwards: the same positions, forwards, in reversed order
            first, step = first + (count - 1) * step, -step
            g = xp.flip(g, axis=axis)
        if first == 0 and step == 1 and count == n:
            continue
        if step > 1 and count > 1:
            zeros = xp.zeros_like(g)
            stuffed = xp.stack([g] + [zeros] * (step - 1), axis=axis + 1)
            merged = (*shape_of(g)[:axis], count * step, *shape_of(g)[axis + 1 :])
            g = xp.reshape(stuffed, merged)
            span = (count - 1) * step + 1
            g = g[(slice(None),) * axis + (slice(0, span), ...)]
        else:
            span = count
        after = n - first - span
        pieces = []
        if first:
            pieces.append(_zeros_along(xp, g, axis, first))
        pieces.append(g)
        if after:
            pieces.append(_zeros_along(xp, g, axis, after))
        g = pieces[0] if len(pieces) == 1 else xp.concat(pieces, axis=axis)
    return g


def _zeros_along(xp: Any, like: Any, axis: int, size: int) -> Any:
    shape = shape_of(like)
    return xp.zeros(
        (*shape[:axis], size, *shape[axis + 1 :]), dtype=like.dtype, device=device_of(like)
    )


def _unsupported(key: Any) -> DifferentiationError:
    return DifferentiationError(
        f"x[{key!r}]: this kind of index has no pullback in xpnet (supported: integers, "
        "slices, None and ..., one integer array with full slices elsewhere, or one "
        "boolean mask); use xp.take / xp.take_along_axis, or xpnet.stop_gradient(x) "
        "where no gradient should flow"
    )


def getitem(xp: Any, x: TrackedArray, key: Any) -> Any:
    value = x._value
    if isinstance(key, list):  # torch and NumPy take a list as an integer array
        key = xp.asarray(key, device=device_of(value))
    raw_key = _raw_key(key)
    if x._node is None:
        return TrackedArray(value[raw_key], None, 0, xp)
    # Plan the pullback before indexing, so an index without one is refused as such.
    shape = shape_of(value)
    items = raw_key if isinstance(raw_key, tuple) else (raw_key,)
    arrays = [i for i, item in enumerate(items) if _is_index_array(item)]
    if not arrays:
        plan = _basic_plan(_expand_ellipsis(items, value.ndim), shape)
        if plan is None:
            raise _unsupported(key)
        y = value[raw_key]
        return view(emit("getitem", xp, y, [(x, lambda g: _embed_basic(xp, g, shape, plan))]), x)
    if len(arrays) != 1:
        raise _unsupported(key)
    index = items[arrays[0]]
    boolean = _is_bool(xp, index)
    full = _expand_ellipsis(items, value.ndim - index.ndim + 1 if boolean else value.ndim)
    if any(item is not index and item != slice(None) for item in full):
        raise _unsupported(key)
    axis = next(i for i, item in enumerate(full) if item is index)
    if boolean and axis != 0:
        raise _unsupported(key)
    y = value[raw_key]
    if boolean:
        return emit("getitem", xp, y, [(x, lambda g: _mask_pullback(xp, g, index, shape))])
    flat = xp.reshape(index, (-1,))
    count = int(flat.shape[0])

    def pullback(g: Any) -> Any:
        merged = (*shape_of(g)[:axis], count, *shape_of(g)[axis + index.ndim :])
        return _gather_pullback(xp, xp.reshape(g, merged), flat, shape[axis], axis, count)

    return emit("getitem", xp, y, [(x, pullback)])


def _is_bool(xp: Any, index: Any) -> bool:
    return bool(xp.isdtype(index.dtype, "bool"))


def _mask_pullback(xp: Any, g: Any, mask: Any, shape: tuple[int, ...]) -> Any:
    """``x[mask]`` took the elements where ``mask`` (the leading axes of ``x``) is true,
    in order: element ``k`` of ``g`` goes back to the position of the ``k``-th true."""
    positions = math.prod(shape[: mask.ndim])
    rest = shape[mask.ndim :]
    flat_mask = xp.reshape(mask, (positions,))
    if g.shape[0] == 0:
        return xp.zeros(shape, dtype=g.dtype, device=device_of(g))
    order = xp.cumulative_sum(xp.astype(flat_mask, xp.int64)) - 1
    order = xp.where(flat_mask, order, 0)
    gathered = xp.take(g, order, axis=0)  # (positions, *rest)
    keep = xp.reshape(flat_mask, (positions,) + (1,) * len(rest))
    return xp.reshape(xp.where(keep, gathered, 0.0), shape)


OPERATORS["__getitem__"] = getitem


def setitem(x: TrackedArray, key: Any, value: Any) -> None:
    raise DifferentiationError(
        f"x[{key!r}] = ...: writing into an array recorded for differentiation is not "
        "supported (the arrays of some backends are immutable, and the gradient of the "
        "overwritten elements would be lost); build the result instead, e.g. "
        "x = xp.where(mask, value, x) or xp.concat of slices"
    )


OPERATORS["__setitem__"] = setitem


def inplace(x: TrackedArray, other: Any, name: str, symbol: str) -> TrackedArray:
    """``x op= other``: ``x`` takes the recorded result, so every name bound to ``x`` sees
    it, as with an in-place update. Refused where that would differ from one: ``x`` is an
    input being differentiated (torch refuses that too), or ``x`` shares memory with
    another array (a slice, reshape or transpose), which an in-place update would change as
    well."""
    if x._node is not None and not x._node.parents:
        raise DifferentiationError(
            f"x {symbol} ...: an in-place update of an array being differentiated (a "
            f"parameter, or an argument of grad) would lose its gradient; write "
            f"y = x {symbol[:-1]} ... instead"
        )
    if x._aliased:
        raise DifferentiationError(
            f"x {symbol} ...: x shares memory with another array recorded for "
            "differentiation (it is a slice, reshape or transpose of one, or has one), and "
            f"an in-place update would reach only x; write x = x {symbol[:-1]} ... instead"
        )
    result = OPERATORS[name](x._xp, x, other, operator=True)
    if result is NotImplemented:
        return NotImplemented  # type: ignore[no-any-return]
    if shape_of(result) != shape_of(x):
        raise ValueError(
            f"x {symbol} ...: the result has shape {shape_of(result)}, x has "
            f"{shape_of(x)}; an in-place update cannot change the shape"
        )
    if result.dtype != x.dtype:
        if not carries_gradient(result) and not x._xp.isdtype(x.dtype, "real floating"):
            raise TypeError(
                f"x {symbol} ...: the result has dtype {result.dtype}, which cannot be "
                f"stored in x ({x.dtype})"
            )
        result = recording_namespace(x._xp).astype(result, x.dtype)
    x._value, x._node, x._index = result._value, result._node, result._index
    return x


OPERATORS["__inplace__"] = inplace

# NumPy ufuncs on tracked arrays, by the standard function they are.
_UFUNCS = {
    "add": "add", "subtract": "subtract", "multiply": "multiply", "true_divide": "divide",
    "divide": "divide", "power": "pow", "float_power": "pow", "matmul": "matmul",
    "floor_divide": "floor_divide", "remainder": "remainder", "mod": "remainder",
    "maximum": "maximum", "minimum": "minimum", "negative": "negative", "positive": "positive",
    "absolute": "abs", "exp": "exp", "expm1": "expm1", "log": "log", "log1p": "log1p",
    "log2": "log2", "log10": "log10", "sqrt": "sqrt", "square": "square", "sin": "sin",
    "cos": "cos", "tan": "tan", "arcsin": "asin", "arccos": "acos", "arctan": "atan",
    "arctan2": "atan2", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "arcsinh": "asinh",
    "arccosh": "acosh", "arctanh": "atanh", "hypot": "hypot", "logaddexp": "logaddexp",
    "sign": "sign", "floor": "floor", "ceil": "ceil", "trunc": "trunc", "rint": "round",
    "reciprocal": "reciprocal", "copysign": "copysign",
    "less": "less", "less_equal": "less_equal", "greater": "greater",
    "greater_equal": "greater_equal", "equal": "equal", "not_equal": "not_equal",
    "isnan": "isnan", "isinf": "isinf", "isfinite": "isfinite",
    "logical_and": "logical_and", "logical_or": "logical_or", "logical_not": "logical_not",
}  # fmt: skip


def numpy_ufunc(
    x: TrackedArray, ufunc: Any, method: str, inputs: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    name = _UFUNCS.get(ufunc.__name__)
    if method != "__call__" or name is None or kwargs:
        raise DifferentiationError(
            f"numpy.{ufunc.__name__}{'' if method == '__call__' else '.' + method} was called "
            "on an array recorded for differentiation; xpnet has no pullback for it. Use the "
            "array's own namespace (xp = array_api_compat.array_namespace(x)), or "
            "xpnet.to_numpy(x) for the value"
        )
    return getattr(recording_namespace(x._xp), name)(*inputs)


OPERATORS["__ufunc__"] = numpy_ufunc
