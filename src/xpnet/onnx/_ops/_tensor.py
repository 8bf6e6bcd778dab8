"""Arithmetic, reductions and the operators that move, cut and reshape tensors."""

from __future__ import annotations

import math
from functools import reduce
from typing import Any

import numpy as np

from ... import functional as F
from ...functional.padding import pad_one
from .._reader import numpy_dtype
from ._registry import Call, Host, namespace, operator, shape

__all__: list[str] = []

# -------------------------------------------------------------------------- arithmetic


def _integral(xp: Any, x: Any) -> bool:
    return bool(xp.isdtype(x.dtype, "integral"))


def _operands(call: Call) -> tuple[Any, Any]:
    """The two inputs of a binary operator, ``B`` aligned with ``A`` by the opset-6 rule
    where it applies (``broadcast=1``: ``B``'s axes placed from ``axis`` on; from opset 7,
    NumPy's broadcasting, which the arrays do themselves)."""
    a, b = call.array(0), call.array(1)
    if call.opset < 7 and call.int_attr("broadcast", 0):
        axis = call.attr("axis", None)
        if axis is not None:
            axis = int(axis) % a.ndim
            dims = shape(b)
            b = namespace(b).reshape(b, (1,) * axis + dims + (1,) * (a.ndim - axis - len(dims)))
    elif call.opset < 7 and shape(a) != shape(b):
        raise call.fail(f"shapes {shape(a)} and {shape(b)} differ and broadcast is 0")
    return a, b


@operator("Add")
def _add(call: Call) -> Any:
    a, b = _operands(call)
    return a + b


@operator("Sub")
def _sub(call: Call) -> Any:
    a, b = _operands(call)
    return a - b


@operator("Mul")
def _mul(call: Call) -> Any:
    a, b = _operands(call)
    return a * b


@operator("Div")
def _div(call: Call) -> Any:
    a, b = _operands(call)
    xp = namespace(a, b)
    if _integral(xp, a):
        # ONNX divides integers toward zero (C's rule), the standard's floor_divide down.
        q = xp.floor_divide(a, b)
        inexact = xp.logical_and(xp.not_equal(q * b, a), xp.not_equal(xp.less(a, 0), xp.less(b, 0)))
        return xp.where(inexact, q + 1, q)
    return a / b


@operator("Pow")
def _pow(call: Call) -> Any:
    base, exponent = _operands(call)
    xp = namespace(base, exponent)
    if exponent.dtype != base.dtype:  # the result takes the base's type
        exponent = xp.astype(exponent, base.dtype)
    return xp.pow(base, exponent)


def _unary(name: str, function: str) -> None:
    def run(call: Call) -> Any:
        x = call.array(0)
        return getattr(namespace(x), function)(x)

    operator(name)(run)


for _name, _function in [
    ("Sqrt", "sqrt"), ("Exp", "exp"), ("Log", "log"), ("Neg", "negative"), ("Abs", "abs"),
    ("Reciprocal", "reciprocal"), ("Floor", "floor"), ("Ceil", "ceil"), ("Sin", "sin"),
    ("Cos", "cos"), ("Sign", "sign"), ("Not", "logical_not"),
]:  # fmt: skip
    _unary(_name, _function)


def _binary(name: str, function: str) -> None:
    def run(call: Call) -> Any:
        a, b = _operands(call)
        return getattr(namespace(a, b), function)(a, b)

    operator(name)(run)


for _name, _function in [
    ("Equal", "equal"), ("Less", "less"), ("Greater", "greater"),
    ("LessOrEqual", "less_equal"), ("GreaterOrEqual", "greater_equal"),
    ("And", "logical_and"), ("Or", "logical_or"), ("Xor", "logical_xor"),
]:  # fmt: skip
    _binary(_name, _function)


def _variadic(call: Call, combine: Any) -> Any:
    arrays = [call.array(i) for i in range(call.count()) if call.has(i)]
    if not arrays:
        raise call.fail("expected at least one input")
    return reduce(combine, arrays)


@operator("Sum")
def _sum(call: Call) -> Any:
    return _variadic(call, lambda a, b: a + b)


@operator("Mean")
def _mean(call: Call) -> Any:
    count = sum(1 for i in range(call.count()) if call.has(i))
    return _variadic(call, lambda a, b: a + b) / count


@operator("Max")
def _max(call: Call) -> Any:
    return _variadic(call, lambda a, b: namespace(a, b).maximum(a, b))


@operator("Min")
def _min(call: Call) -> Any:
    return _variadic(call, lambda a, b: namespace(a, b).minimum(a, b))


@operator("Where")
def _where(call: Call) -> Any:
    condition, a, b = call.array(0), call.array(1), call.array(2)
    return namespace(a, b).where(condition, a, b)


# -------------------------------------------------------------------------- reductions


def _reduce_axes(call: Call, rank: int, input_since: int) -> tuple[int, ...] | None:
    """The axes to reduce (None: all), from the attribute or, from ``input_since`` on, the
    second input."""
    axes = call.host_ints(1, "axes") if call.opset >= input_since else call.ints_attr("axes", None)
    if not axes:
        if call.opset >= input_since and call.int_attr("noop_with_empty_axes", 0):
            return ()
        return None
    normalized = []
    for axis in axes:
        if not -rank <= axis < rank:
            raise call.fail(f"axes: {axis} is out of range for rank {rank}")
        normalized.append(axis % rank)
    return tuple(sorted(set(normalized)))


def _reduction(name: str, function: str, input_since: int) -> None:
    def run(call: Call) -> Any:
        x = call.array(0)
        axes = _reduce_axes(call, x.ndim, input_since)
        if axes == ():
            return x
        keepdims = bool(call.int_attr("keepdims", 1))
        xp = namespace(x)
        dims = shape(x)
        reduced = range(x.ndim) if axes is None else axes
        if function in ("max", "min") and any(dims[a] == 0 for a in reduced):
            # Over nothing: the reduction's identity (ONNX's rule), where NumPy refuses.
            out = tuple(
                1 if i in reduced else d for i, d in enumerate(dims) if keepdims or i not in reduced
            )
            return xp.full(out, _identity_of(xp, x.dtype, function), dtype=x.dtype)
        reduce_with = function
        if function in ("max", "min") and xp.isdtype(x.dtype, "bool"):  # any, all
            reduce_with = "any" if function == "max" else "all"
        return getattr(xp, reduce_with)(x, axis=axes, keepdims=keepdims)

    operator(name, host_inputs=(1,))(run)


def _identity_of(xp: Any, dtype: Any, function: str) -> Any:
    if xp.isdtype(dtype, "bool"):
        return function == "min"
    if xp.isdtype(dtype, "integral"):
        info = xp.iinfo(dtype)
        return info.min if function == "max" else info.max
    return -math.inf if function == "max" else math.inf


_reduction("ReduceSum", "sum", 13)
_reduction("ReduceMean", "mean", 18)
_reduction("ReduceMax", "max", 18)
_reduction("ReduceMin", "min", 18)
_reduction("ReduceProd", "prod", 18)


# -------------------------------------------------------------------------- constants, shapes


def _onnx_dtype(call: Call, code: int) -> np.dtype[Any]:
    dtype = numpy_dtype(code)
    if isinstance(dtype, str):
        raise call.unsupported(f"data type {dtype} is not supported")
    return dtype


@operator("Constant")
def _constant(call: Call) -> Any:
    attributes = call.node.attributes
    if "value" in attributes:
        return Host(attributes["value"])
    for name, dtype in [
        ("value_float", np.float32), ("value_floats", np.float32),
        ("value_int", np.int64), ("value_ints", np.int64),
    ]:  # fmt: skip
        if name in attributes:
            return Host(np.asarray(attributes[name], dtype=dtype))
    raise call.unsupported(f"a Constant with attributes {sorted(attributes)}")


@operator("ConstantOfShape", host_inputs=(0,))
def _constant_of_shape(call: Call) -> Any:
    dims = call.host_ints(0, "shape") or []
    if any(d < 0 for d in dims):
        raise call.fail(f"shape: negative dimension in {dims}")
    value = call.attr("value", None)
    fill = np.zeros((1,), np.float32) if value is None else np.asarray(value).reshape(-1)
    return Host(np.full(dims, fill[0], dtype=fill.dtype))


@operator("Shape")
def _shape(call: Call) -> Any:
    dims = shape(call.array(0))
    start, end = call.int_attr("start", 0), call.attr("end", None)
    return Host(np.asarray(dims[slice(start, None if end is None else int(end))], np.int64))


@operator("Size")
def _size(call: Call) -> Any:
    return Host(np.asarray(math.prod(shape(call.array(0))), np.int64))


@operator("Identity")
def _identity(call: Call) -> Any:
    return call.values[0] if isinstance(call.values[0], Host) else call.array(0)


@operator("Cast")
def _cast(call: Call) -> Any:
    x = call.array(0)
    dtype = _onnx_dtype(call, call.int_attr("to"))
    xp = namespace(x)
    return xp.astype(x, getattr(xp, dtype.name))


@operator("Range", host_inputs=(0, 1, 2))
def _range(call: Call) -> Any:
    start, limit, delta = (
        call.host_scalar(i, n) for i, n in enumerate(["start", "limit", "delta"])
    )
    if not delta:
        raise call.fail("delta: a step of 0")
    dtype = call.host(0, "start").dtype  # type: ignore[union-attr]
    count = max(math.ceil((limit - start) / delta), 0)  # type: ignore[operator]
    return Host(start + np.arange(count, dtype=dtype) * np.asarray(delta, dtype=dtype))


# -------------------------------------------------------------------------- layout


@operator("Reshape", host_inputs=(1,))
def _reshape(call: Call) -> Any:
    x = call.array(0)
    target = call.host_ints(1, "shape") or []
    allow_zero = call.int_attr("allowzero", 0) if call.opset >= 14 else 0
    dims = shape(x)
    resolved = [
        dims[i] if d == 0 and not allow_zero and i < len(dims) else d for i, d in enumerate(target)
    ]
    if resolved.count(-1) > 1 or any(d < -1 for d in resolved):
        raise call.fail(f"shape: {target} is not a valid shape for an input of shape {dims}")
    known = math.prod(d for d in resolved if d != -1)
    total = math.prod(dims)
    if -1 in resolved:
        if known == 0 or total % known:
            raise call.fail(f"shape: cannot reshape {dims} into {target}")
        resolved[resolved.index(-1)] = total // known
    if math.prod(resolved) != total:
        raise call.fail(f"shape: cannot reshape {dims} ({total} values) into {target}")
    return namespace(x).reshape(x, tuple(resolved))


@operator("Flatten")
def _flatten(call: Call) -> Any:
    x = call.array(0)
    dims = shape(x)
    axis = call.int_attr("axis", 1)
    if not -len(dims) <= axis <= len(dims):
        raise call.fail(f"axis: {axis} is out of range for rank {len(dims)}")
    axis = axis + len(dims) if axis < 0 else axis
    return namespace(x).reshape(x, (math.prod(dims[:axis]), math.prod(dims[axis:])))


@operator("Transpose")
def _transpose(call: Call) -> Any:
    x = call.array(0)
    perm = call.ints_attr("perm", None)
    perm = list(range(x.ndim))[::-1] if perm is None else perm
    if sorted(perm) != list(range(x.ndim)):
        raise call.fail(f"perm: {perm} is not a permutation of the {x.ndim} axes")
    return namespace(x).permute_dims(x, tuple(perm))


def _axes(call: Call, since: int) -> list[int] | None:
    return call.host_ints(1, "axes") if call.opset >= since else call.ints_attr("axes", None)


@operator("Squeeze", host_inputs=(1,))
def _squeeze(call: Call) -> Any:
    x = call.array(0)
    dims = shape(x)
    axes = _axes(call, 13)
    if axes is None:
        axes = [i for i, d in enumerate(dims) if d == 1]
    axes = sorted({a % len(dims) for a in axes}) if dims else []
    if any(dims[a] != 1 for a in axes):
        raise call.fail(f"axes: {axes} includes an axis whose size is not 1 (shape {dims})")
    return namespace(x).reshape(x, tuple(d for i, d in enumerate(dims) if i not in axes))


@operator("Unsqueeze", host_inputs=(1,))
def _unsqueeze(call: Call) -> Any:
    x = call.array(0)
    dims = list(shape(x))
    axes = _axes(call, 13)
    if not axes:
        raise call.fail("axes: expected at least one axis")
    rank = len(dims) + len(axes)
    positions = sorted(a % rank for a in axes)
    if len(set(positions)) != len(positions):
        raise call.fail(f"axes: {axes} repeats an axis")
    for position in positions:
        dims.insert(position, 1)
    return namespace(x).reshape(x, tuple(dims))


@operator("Concat")
def _concat(call: Call) -> Any:
    arrays = [call.array(i) for i in range(call.count()) if call.has(i)]
    axis = call.axis_attr(arrays[0].ndim)
    return namespace(*arrays).concat(arrays, axis=axis)


def _slice_axis(x: Any, axis: int, start: int, stop: int, step: int) -> Any:
    """``x`` cut along ``axis`` as Python's ``slice(start, stop, step)`` cuts a sequence
    (ONNX's Slice rule), by positive steps and a flip (torch slices forward only)."""
    xp = namespace(x)
    size = shape(x)[axis]
    first, last, stride = slice(start, stop, step).indices(size)
    taken = range(first, last, stride)
    index: list[Any] = [slice(None)] * x.ndim
    if stride > 0:
        index[axis] = slice(first, last, stride)
        return x[tuple(index)]
    if len(taken) == 0:
        index[axis] = slice(0, 0)
        return x[tuple(index)]
    index[axis] = slice(taken[-1], taken[0] + 1, -stride)
    return xp.flip(x[tuple(index)], axis=axis)


@operator("Slice", host_inputs=(1, 2, 3, 4))
def _slice(call: Call) -> Any:
    x = call.array(0)
    rank = x.ndim
    if call.opset < 10:
        starts, ends = call.ints_attr("starts"), call.ints_attr("ends")
        axes, steps = call.ints_attr("axes", None), None
    else:
        starts, ends = call.host_ints(1, "starts"), call.host_ints(2, "ends")
        axes, steps = call.host_ints(3, "axes"), call.host_ints(4, "steps")
    if starts is None or ends is None:
        raise call.fail("starts and ends are required")
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise call.fail("starts, ends, axes and steps must have the same length")
    if any(s == 0 for s in steps):
        raise call.fail("steps: a step of 0")
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if not -rank <= axis < rank:
            raise call.fail(f"axes: {axis} is out of range for rank {rank}")
        x = _slice_axis(x, axis % rank, start, end, step)
    return x


@operator("Split", host_inputs=(1,))
def _split(call: Call) -> Any:
    x = call.array(0)
    dims = shape(x)
    axis = call.axis_attr(len(dims), 0)
    count = len(call.node.outputs)
    sizes = call.host_ints(1, "split") if call.opset >= 13 else call.ints_attr("split", None)
    if sizes is None:
        parts = call.int_attr("num_outputs", count) if call.opset >= 18 else count
        each = -(-dims[axis] // parts)
        sizes = [min(each, max(dims[axis] - each * k, 0)) for k in range(parts)]
    if sum(sizes) != dims[axis] or len(sizes) != count:
        raise call.fail(f"split: sizes {sizes} do not cut axis {axis} of size {dims[axis]} "
                        f"into {count} outputs")  # fmt: skip
    bounds = np.cumsum([0, *sizes])
    return tuple(_slice_axis(x, axis, int(bounds[k]), int(bounds[k + 1]), 1) for k in range(count))


@operator("Gather")
def _gather(call: Call) -> Any:
    data = call.array(0)
    dims = shape(data)
    axis = call.axis_attr(len(dims), 0)
    xp = namespace(data)
    indices_value = call.values[1]
    if isinstance(indices_value, Host):
        host = indices_value.value.astype(np.int64)
        if np.any(host < -dims[axis]) or np.any(host >= dims[axis]):
            raise call.fail(f"indices: out of range for axis {axis} of size {dims[axis]}")
        host = np.where(host < 0, host + dims[axis], host)
        index_shape = host.shape
        indices = call.place_host(host.reshape(-1), data)
    else:
        indices = call.array(1)
        index_shape = shape(indices)
        indices = xp.reshape(indices, (-1,))
        indices = xp.where(xp.less(indices, 0), indices + dims[axis], indices)
    taken = xp.take(data, indices, axis=axis)
    return xp.reshape(taken, (*dims[:axis], *index_shape, *dims[axis + 1 :]))


@operator("Expand", host_inputs=(1,))
def _expand(call: Call) -> Any:
    x = call.array(0)
    target = call.host_ints(1, "shape") or []
    dims = shape(x)
    try:
        out = np.broadcast_shapes(dims, tuple(target))
    except ValueError:
        raise call.fail(f"shape: {target} does not broadcast with the input's {dims}") from None
    return namespace(x).broadcast_to(x, out)


@operator("Tile", host_inputs=(1,))
def _tile(call: Call) -> Any:
    x = call.array(0)
    repeats = call.host_ints(1, "repeats") or []
    if len(repeats) != x.ndim or any(r < 0 for r in repeats):
        raise call.fail(f"repeats: expected {x.ndim} non-negative counts, got {repeats}")
    return namespace(x).tile(x, tuple(repeats))


@operator("Pad", host_inputs=(1, 2, 3))
def _pad(call: Call) -> Any:
    x = call.array(0)
    rank = x.ndim
    if call.opset < 11:
        pads = call.ints_attr("pads")
        value = call.float_attr("value", 0.0)
        axes = None
    else:
        pads = call.host_ints(1, "pads")
        value = (call.host_scalar(2, "constant_value") if call.has(2) else None) or 0.0
        axes = call.host_ints(3, "axes") if call.opset >= 18 else None
    assert pads is not None
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    if len(pads) != 2 * len(axes):
        raise call.fail(f"pads: expected {2 * len(axes)} values (begin and end per axis), "
                        f"got {len(pads)}")  # fmt: skip
    mode = call.attr("mode", "constant")
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if mode not in modes:
        raise call.unsupported(f"mode {mode!r}")
    begins, ends = pads[: len(axes)], pads[len(axes) :]
    if modes[mode] == "constant":
        torch_order = [0] * (2 * rank)
        for axis, before, after in zip(axes, begins, ends, strict=True):
            torch_order[2 * (rank - 1 - axis)] = before
            torch_order[2 * (rank - 1 - axis) + 1] = after
        fill = float(value) if value is not None else 0.0
        return F.pad(x, tuple(torch_order), mode="constant", value=fill)
    xp = namespace(x)
    for axis, before, after in zip(axes, begins, ends, strict=True):
        if before == after == 0:
            continue
        if min(before, after) < 0:  # crop first, as the constant mode does
            x = _slice_axis(x, axis, max(-before, 0), shape(x)[axis] - max(-after, 0), 1)
            before, after = max(before, 0), max(after, 0)
        if not xp.isdtype(x.dtype, "real floating"):  # no gradient: the plain pad
            x = pad_one(xp, x, axis, before, after, modes[mode], 0)
            continue
        moved = xp.moveaxis(x, axis, -1)
        dims = shape(moved)
        flat = xp.reshape(moved, (math.prod(dims[:-1]), dims[-1]))
        padded = F.pad(flat, (before, after), mode=modes[mode])
        x = xp.moveaxis(xp.reshape(padded, (*dims[:-1], dims[-1] + before + after)), -1, axis)
    return x
