"""The array namespace a traced array gives to code written against the standard: each
function computes on the backend and writes its ONNX node(s); called on arrays that do not
depend on the input it is the backend's own (the result enters the graph as a constant)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._errors import OnnxExportError
from ._graph import (
    INT64_MIN,
    BatchDerived,
    BatchSize,
    ExportArray,
    Graph,
    active_graph,
    batch_related,
    onnx_type,
)
from ._indexing import raw, reshape, shape_operand

__all__ = ["export_namespace"]


def _traced(values: Sequence[Any]) -> list[ExportArray]:
    return [v for v in values if type(v) is ExportArray]


def _aligned_batch(values: Sequence[Any], ndim: int) -> int | None:
    """The output's batch axis for a broadcasting op over ``values``."""
    for value in _traced(values):
        if value.batch_axis is not None:
            return value.batch_axis + ndim - value.ndim
    return None


def _lost(values: Sequence[Any]) -> bool:
    return any(v.lost for v in _traced(values))


# ---------------------------------------------------------------------------- element-wise

_UNARY = {
    "abs": "Abs", "negative": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
    "tanh": "Tanh", "sin": "Sin", "cos": "Cos", "tan": "Tan", "asin": "Asin",
    "acos": "Acos", "atan": "Atan", "sinh": "Sinh", "cosh": "Cosh", "asinh": "Asinh",
    "acosh": "Acosh", "atanh": "Atanh", "floor": "Floor", "ceil": "Ceil", "round": "Round",
    "sign": "Sign", "reciprocal": "Reciprocal", "isnan": "IsNaN", "isinf": "IsInf",
    "logical_not": "Not", "erf": "Erf",
}  # fmt: skip

_BINARY = {
    "add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div", "pow": "Pow",
    "maximum": "Max", "minimum": "Min", "equal": "Equal", "less": "Less",
    "greater": "Greater", "less_equal": "LessOrEqual", "greater_equal": "GreaterOrEqual",
    "logical_and": "And", "logical_or": "Or", "logical_xor": "Xor",
}  # fmt: skip

_COMPARISONS = frozenset({"equal", "not_equal", "less", "greater", "less_equal", "greater_equal"})


def _unary(xp: Any, name: str) -> Callable[..., Any]:
    backend = getattr(xp, name)

    def call(x: Any, /) -> Any:
        if type(x) is not ExportArray:
            return backend(x)
        graph = x.graph
        value = backend(x._value)
        if name == "positive":
            return x
        if name == "bitwise_invert":
            out = _bitwise(graph, "Not", "BitwiseNot", [x.name], value)
        elif name == "square":
            out = graph.one("Mul", [x.name, x.name])
        elif name == "log1p":
            one = graph.scalar(1.0, x.dtype)
            out = graph.one("Log", [graph.one("Add", [x.name, one])])
        elif name == "expm1":
            one = graph.scalar(1.0, x.dtype)
            out = graph.one("Sub", [graph.one("Exp", [x.name]), one])
        else:
            out = graph.one(_UNARY[name], [x.name])
        return graph.wrap(value, out, x.batch_axis, x.lost)

    call.__name__ = name
    return call


def _bitwise(graph: Graph, logical: str, bitwise: str, inputs: list[str], value: Any) -> str:
    """``&``, ``|``, ``^`` and ``~``: logical on booleans, bitwise on integers (ONNX 18+)."""
    if "bool" in str(value.dtype):
        return graph.one(logical, inputs)
    if graph.opset < 18:
        raise OnnxExportError(
            f"bitwise {bitwise[7:].lower()} of integers needs opset 18 or later (ONNX's "
            f"{bitwise}); export with opset=18"
        )
    return graph.one(bitwise, inputs)


def _binary(xp: Any, name: str) -> Callable[..., Any]:
    backend = getattr(xp, name)

    def call(a: Any, b: Any, /) -> Any:
        traced = _traced((a, b))
        if not traced:
            return backend(a, b)
        graph = traced[0].graph
        value = backend(raw(a), raw(b))
        # The operands in one type (ONNX does not promote): the result's, or for a
        # comparison the one the backend compared in.
        arrays = [raw(v) for v in (a, b) if not isinstance(v, int | float | bool)]
        common = xp.result_type(*arrays) if name in _COMPARISONS else None
        if (
            common is not None
            and not xp.isdtype(common, ("real floating", "bool"))
            and any(isinstance(v, float) for v in (a, b))
        ):  # an integer array against a float: compared as floats, as the backend does
            common = xp.float64
        like = value.dtype if common is None else common
        if name in ("logical_and", "logical_or", "logical_xor"):
            like = xp.bool
        inputs = [graph.name_of(v, like) for v in (a, b)]
        if name in _BITWISE:
            out = _bitwise(graph, *_BITWISE[name], inputs, value)
        elif name == "not_equal":
            out = graph.one("Not", [graph.one("Equal", inputs)])
        elif name == "matmul":
            out = graph.one("MatMul", inputs)
        elif name == "floor_divide":
            quotient = graph.one("Div", inputs)
            floating = xp.isdtype(value.dtype, "real floating")
            out = graph.one("Floor", [quotient]) if floating else quotient
            if not floating:
                raise OnnxExportError("floor_divide of integers has no exact ONNX operator")
        elif name == "remainder":
            floating = xp.isdtype(value.dtype, "real floating")
            out = graph.one("Mod", inputs, fmod=int(floating))
            if floating:  # ONNX's fmod keeps the dividend's sign; the standard the divisor's
                raise OnnxExportError("remainder of floats has no exact ONNX operator")
        else:
            out = graph.one(_BINARY[name], inputs)
        batch = _aligned_batch((a, b), int(value.ndim))
        if name == "matmul":
            batch = _matmul_batch(a, b, int(value.ndim))
        return graph.wrap(value, out, batch, _lost((a, b)))

    call.__name__ = name
    return call


def _matmul_batch(a: Any, b: Any, ndim: int) -> int | None:
    """The output axis of ``a @ b`` that an operand's batch axis becomes (``None`` where it
    is contracted away, or an operand is 1-D)."""
    for operand, is_left in ((a, True), (b, False)):
        if type(operand) is not ExportArray or operand.batch_axis is None or operand.ndim < 2:
            continue
        axis, rank = operand.batch_axis, operand.ndim
        if axis < rank - 2:  # a stacked (broadcast) axis
            return axis + ndim - rank
        if is_left and axis == rank - 2:  # the rows
            return ndim - (2 if int(getattr(b, "ndim", 2)) >= 2 else 1)
        if not is_left and axis == rank - 1:  # the columns
            return ndim - 1
    return None


_BITWISE = {
    "bitwise_and": ("And", "BitwiseAnd"),
    "bitwise_or": ("Or", "BitwiseOr"),
    "bitwise_xor": ("Xor", "BitwiseXor"),
}


# --------------------------------------------------------------------------- the namespace


class ExportNamespace:
    """The backend namespace ``xp``, writing ONNX nodes for traced arrays (module doc)."""

    def __init__(self, xp: Any) -> None:
        self._xp = xp
        self.__name__ = f"xpnet.onnx.export({getattr(xp, '__name__', xp)})"
        for name in _UNARY.keys() | {"positive", "square", "log1p", "expm1", "bitwise_invert"}:
            if hasattr(xp, name):
                setattr(self, name, _unary(xp, name))
        extra = {"not_equal", "matmul", "floor_divide", "remainder", *_BITWISE}
        for name in _BINARY.keys() | extra:
            setattr(self, name, _binary(xp, name))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name not in ("__array_api_version__",):
            raise AttributeError(name)
        attribute = getattr(self._xp, name)
        if not callable(attribute) or isinstance(attribute, type):
            return attribute
        if name in _CREATION:
            found: Any = _creation(self._xp, name, attribute)
        else:
            found = _refusing(name, attribute)
        object.__setattr__(self, name, found)
        return found

    def __repr__(self) -> str:
        return f"<{self.__name__}>"

    # -- element-wise with arguments ------------------------------------------------------

    def where(self, condition: Any, x1: Any, x2: Any, /) -> Any:
        xp = self._xp
        traced = _traced((condition, x1, x2))
        if not traced:
            return xp.where(condition, x1, x2)
        graph = traced[0].graph
        value = xp.where(raw(condition), raw(x1), raw(x2))
        inputs = [
            graph.name_of(condition, xp.bool),
            graph.name_of(x1, value.dtype),
            graph.name_of(x2, value.dtype),
        ]
        out = graph.one("Where", inputs)
        batch = _aligned_batch((condition, x1, x2), int(value.ndim))
        return graph.wrap(value, out, batch, _lost((condition, x1, x2)))

    def clip(self, x: Any, /, min: Any = None, max: Any = None) -> Any:
        xp = self._xp
        if not _traced((x, min, max)):
            return xp.clip(x, min, max)
        if type(x) is not ExportArray:
            raise OnnxExportError("clip: bounds that depend on the input need a traced x")
        graph = x.graph
        value = xp.clip(x._value, raw(min), raw(max))
        if any(b is not None and not isinstance(b, int | float) for b in (min, max)):
            out = x.name  # array bounds: element-wise
            if min is not None:
                out = graph.one("Max", [out, graph.name_of(min, x.dtype)])
            if max is not None:
                out = graph.one("Min", [out, graph.name_of(max, x.dtype)])
        else:
            bounds = [
                "" if bound is None else graph.scalar(float(bound), x.dtype) for bound in (min, max)
            ]
            while bounds and not bounds[-1]:
                bounds.pop()
            out = graph.one("Clip", [x.name, *bounds])
        return graph.wrap(value, out, x.batch_axis, x.lost)

    def astype(self, x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
        if type(x) is not ExportArray:
            return self._xp.astype(x, dtype, copy=copy)
        value = self._xp.astype(x._value, dtype)
        if value.dtype == x.dtype:
            return x
        graph = x.graph
        out = graph.one("Cast", [x.name], to=onnx_type(graph.onnx, dtype))
        return graph.wrap(value, out, x.batch_axis, x.lost)

    # -- shapes ---------------------------------------------------------------------------

    def reshape(self, x: Any, /, shape: Sequence[int], *, copy: bool | None = None) -> Any:
        if type(x) is not ExportArray:
            return self._xp.reshape(x, tuple(shape))
        return reshape(x, shape)

    def permute_dims(self, x: Any, /, axes: Sequence[int]) -> Any:
        if type(x) is not ExportArray:
            return self._xp.permute_dims(x, tuple(axes))
        axes = [int(a) % x.ndim for a in axes]
        value = self._xp.permute_dims(x._value, tuple(axes))
        out = x.graph.one("Transpose", [x.name], perm=axes)
        batch = axes.index(x.batch_axis) if x.batch_axis is not None else None
        return x.graph.wrap(value, out, batch, x.lost)

    def matrix_transpose(self, x: Any, /) -> Any:
        axes = list(range(x.ndim))
        axes[-2:] = axes[-1], axes[-2]
        return self.permute_dims(x, axes)

    def moveaxis(self, x: Any, source: Any, destination: Any, /) -> Any:
        if type(x) is not ExportArray:
            return self._xp.moveaxis(x, source, destination)
        sources = [source] if isinstance(source, int) else list(source)
        targets = [destination] if isinstance(destination, int) else list(destination)
        sources = [s % x.ndim for s in sources]
        targets = [t % x.ndim for t in targets]
        order = [a for a in range(x.ndim) if a not in sources]
        for target, src in sorted(zip(targets, sources, strict=True)):
            order.insert(target, src)
        return self.permute_dims(x, order)

    def expand_dims(self, x: Any, /, axis: int = 0) -> Any:
        if type(x) is not ExportArray:
            return self._xp.expand_dims(x, axis=axis)
        value = self._xp.expand_dims(x._value, axis=axis)
        where = int(axis) % int(value.ndim)
        out = x.graph.unsqueeze(x.name, [where])
        batch = x.batch_axis
        if batch is not None and batch >= where:
            batch += 1
        return x.graph.wrap(value, out, batch, x.lost)

    def squeeze(self, x: Any, /, axis: int | tuple[int, ...]) -> Any:
        if type(x) is not ExportArray:
            return self._xp.squeeze(x, axis=axis)
        axes = sorted({int(a) % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)})
        value = self._xp.squeeze(x._value, axis=tuple(axes))
        out = x.graph.squeeze(x.name, axes)
        batch = x.batch_axis
        if batch is not None:
            batch = None if batch in axes else batch - sum(a < batch for a in axes)
        return x.graph.wrap(value, out, batch, x.lost)

    def broadcast_to(self, x: Any, /, shape: Sequence[int]) -> Any:
        sizes = tuple(shape)
        if type(x) is not ExportArray:
            if not any(batch_related(n) for n in sizes):
                return self._xp.broadcast_to(x, tuple(int(n) for n in sizes))
            graph = active_graph()  # a constant spread over the batch (a class token)
            x = graph.wrap(x, graph.constant(x), None)
        value = self._xp.broadcast_to(x._value, tuple(int(n) for n in sizes))
        graph = x.graph
        target = shape_operand(graph, x, sizes, "broadcast_to")
        out = graph.one("Expand", [x.name, target])
        batch = _aligned_batch((x,), int(value.ndim))
        if batch is None and type(sizes[0] if sizes else None) is BatchSize:
            batch = 0
        elif batch is None:
            marked = [i for i, n in enumerate(sizes) if type(n) is BatchSize]
            batch = marked[0] if marked and not graph.fixed_batch else None
        return graph.wrap(value, out, batch, x.lost)

    def concat(self, arrays: Sequence[Any], /, *, axis: int | None = 0) -> Any:
        arrays = list(arrays)
        traced = _traced(arrays)
        if not traced:
            return self._xp.concat(arrays, axis=axis)
        graph = traced[0].graph
        if axis is None:
            arrays = [self.reshape(a, (-1,)) for a in arrays]
            axis = 0
        value = self._xp.concat([raw(a) for a in arrays], axis=axis)
        out = graph.one(
            "Concat", [graph.name_of(a, value.dtype) for a in arrays], axis=int(axis) % value.ndim
        )
        batch = _aligned_batch(arrays, int(value.ndim))
        lost = _lost(arrays)
        if batch is not None and batch == int(axis) % value.ndim:
            batch, lost = None, True  # the batch, concatenated: a size no axis names
        return graph.wrap(value, out, batch, lost)

    def stack(self, arrays: Sequence[Any], /, *, axis: int = 0) -> Any:
        arrays = list(arrays)
        if not _traced(arrays):
            return self._xp.stack(arrays, axis=axis)
        ndim = int(raw(arrays[0]).ndim) + 1
        expanded = [self.expand_dims(a, axis=int(axis) % ndim) for a in arrays]
        return self.concat(expanded, axis=int(axis) % ndim)

    def flip(self, x: Any, /, *, axis: int | tuple[int, ...] | None = None) -> Any:
        if type(x) is not ExportArray:
            return self._xp.flip(x, axis=axis)
        value = self._xp.flip(x._value, axis=axis)
        axes = _axes(axis, x.ndim)
        graph = x.graph
        count = len(axes)
        inputs = [x.name, graph.ints([-1] * count), graph.ints([INT64_MIN] * count),
                  graph.ints(axes), graph.ints([-1] * count)]  # fmt: skip
        return graph.wrap(value, graph.one("Slice", inputs), x.batch_axis, x.lost)

    def take(self, x: Any, indices: Any, /, *, axis: int | None = None) -> Any:
        if type(x) is not ExportArray:
            if type(indices) is ExportArray:
                raise OnnxExportError("take: indices computed from the input need a traced x")
            return self._xp.take(x, indices, axis=axis)
        if axis is None:
            x, axis = self.reshape(x, (-1,)), 0
        value = self._xp.take(x._value, raw(indices), axis=axis)
        graph = x.graph
        out = graph.one("Gather", [x.name, graph.name_of(indices)], axis=int(axis) % x.ndim)
        batch = x.batch_axis if x.batch_axis is not None and x.batch_axis < axis else None
        return graph.wrap(value, out, batch, x.lost)

    # -- reductions -----------------------------------------------------------------------

    def _reduce(
        self, name: str, op_type: str, x: Any, axis: Any, keepdims: bool, **extra: Any
    ) -> Any:
        if type(x) is not ExportArray:
            return getattr(self._xp, name)(x, axis=axis, keepdims=keepdims, **extra)
        value = getattr(self._xp, name)(x._value, axis=axis, keepdims=keepdims)
        axes = _axes(axis, x.ndim)
        if not axes:  # axis=(): nothing reduced (ONNX's empty axes would reduce them all)
            return x
        graph = x.graph
        out = graph.reduce(op_type, x.name, axes, keepdims)
        return graph.wrap(value, out, _reduced_batch(x, axes, keepdims), x.lost)

    def sum(self, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
        if dtype is not None:
            x = self.astype(x, dtype)
        return self._reduce("sum", "ReduceSum", x, axis, keepdims)

    def prod(
        self, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False
    ) -> Any:
        if dtype is not None:
            x = self.astype(x, dtype)
        return self._reduce("prod", "ReduceProd", x, axis, keepdims)

    def mean(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("mean", "ReduceMean", x, axis, keepdims)

    def max(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("max", "ReduceMax", x, axis, keepdims)

    def min(self, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce("min", "ReduceMin", x, axis, keepdims)

    def var(
        self, x: Any, /, *, axis: Any = None, correction: float = 0.0, keepdims: bool = False
    ) -> Any:
        if type(x) is not ExportArray:
            return self._xp.var(x, axis=axis, correction=correction, keepdims=keepdims)
        axes = _axes(axis, x.ndim)
        if not axes:  # over nothing: each value is its own mean
            return x * 0.0
        if correction and (x.batch_axis in axes or x.lost):
            x.graph.fix_batch("a variance with a correction over the batch (its count)")
        count = int(np.prod([x._value.shape[a] for a in axes]))
        centred = x - self.mean(x, axis=tuple(axes), keepdims=True)
        result = self.mean(centred * centred, axis=tuple(axes), keepdims=keepdims)
        if correction:
            result = result * (count / (count - correction))
        return result

    def std(
        self, x: Any, /, *, axis: Any = None, correction: float = 0.0, keepdims: bool = False
    ) -> Any:
        return self.sqrt(self.var(x, axis=axis, correction=correction, keepdims=keepdims))


def _axes(axis: Any, ndim: int) -> list[int]:
    if axis is None:
        return list(range(ndim))
    return sorted({int(a) % ndim for a in ((axis,) if isinstance(axis, int) else axis)})


def _reduced_batch(x: ExportArray, axes: Sequence[int], keepdims: bool) -> int | None:
    batch = x.batch_axis
    if batch is None or batch in axes:
        return None
    return batch if keepdims else batch - sum(a < batch for a in axes)


_CREATION = frozenset(
    {"zeros", "ones", "full", "empty", "zeros_like", "ones_like", "full_like", "empty_like"}
)


def _creation(xp: Any, name: str, backend: Callable[..., Any]) -> Callable[..., Any]:
    """A creation function: a constant; the ``_like`` forms of a traced array are written as
    ``ConstantOfShape`` of its shape, so the batch stays symbolic."""

    @functools.wraps(backend)
    def call(*args: Any, **kwargs: Any) -> Any:
        if name.endswith("_like") and args and type(args[0]) is ExportArray:
            x = args[0]
            value = backend(x._value, *args[1:], **kwargs)
            fill = {"zeros_like": 0, "empty_like": 0, "ones_like": 1}.get(name)
            if fill is None:
                fill = kwargs.get("fill_value", args[1] if len(args) > 1 else 0)
            graph = x.graph
            tensor = graph.onnx.numpy_helper.from_array(
                np.asarray([fill], dtype=_host(value.dtype))
            )
            out = graph.one("ConstantOfShape", [graph.shape_of(x.name)], value=tensor)
            return graph.wrap(value, out, x.batch_axis, x.lost)
        shape = kwargs.get("shape", args[0] if args else ())
        sizes = (shape,) if isinstance(shape, int) else tuple(shape)
        if not any(batch_related(n) for n in sizes):
            return backend(*args, **kwargs)
        graph = active_graph()
        value = backend(*args, **kwargs)
        marked = [i for i, n in enumerate(sizes) if type(n) is BatchSize]
        if len(marked) != 1 or any(type(n) is BatchDerived for n in sizes) or name == "empty":
            graph.fix_batch(f"xp.{name} with a size computed from the batch in its shape")
            return value
        # ConstantOfShape of a shape that reads the batch from the input: symbolic.
        fill = {"zeros": 0, "ones": 1}.get(name)
        if fill is None:
            fill = kwargs.get("fill_value", args[1] if len(args) > 1 else 0)
        tensor = graph.onnx.numpy_helper.from_array(np.asarray([fill], dtype=_host(value.dtype)))
        like = graph.wrap(value, "", None)
        target = shape_operand(graph, like, sizes, f"xp.{name}")
        out = graph.one("ConstantOfShape", [target], value=tensor)
        return graph.wrap(value, out, marked[0] if not graph.fixed_batch else None)

    return call


def _host(dtype: Any) -> Any:
    from ._graph import host_dtype

    return host_dtype(dtype)


def _refusing(name: str, backend: Callable[..., Any]) -> Callable[..., Any]:
    """A function with no ONNX form: the backend's on constants, an error on traced arrays."""

    @functools.wraps(backend)
    def call(*args: Any, **kwargs: Any) -> Any:
        values = [*args, *kwargs.values()]
        flat = [v for a in values for v in (a if isinstance(a, list | tuple) else (a,))]
        if _traced(flat):
            raise OnnxExportError(
                f"xp.{name} is not exported to ONNX; the model calls it on an array computed "
                "from its input. Use the functions xpnet.functional or the standard's "
                "arithmetic, reshaping, reductions and indexing offer"
            )
        return backend(*args, **kwargs)

    return call


_namespaces: dict[int, tuple[Any, ExportNamespace]] = {}


def export_namespace(xp: Any) -> ExportNamespace:
    """The export namespace around the backend namespace ``xp`` (one per backend)."""
    known = _namespaces.get(id(xp))
    if known is None or known[0] is not xp:
        known = _namespaces[id(xp)] = (xp, ExportNamespace(xp))
    return known[1]
