"""The graph an export writes, and the symbolic arrays that write it.

An export runs the model's own ``forward`` once on :class:`ExportArray` inputs and
parameters. Each carries the value the model would compute (on the model's backend, so
shapes and constant folding are real) and the name of the ONNX value that holds it. The ops
of :mod:`xpnet.functional` hand their whole call to :mod:`._primitives`, which writes one
ONNX node per layer (``Conv``, not a trace of im2col); the array namespace and operators
(a residual ``+``, ``concat``, ``reshape``, indexing) write theirs in :mod:`._namespace`.
Arithmetic on arrays that do not depend on the input runs on the backend and enters the
graph as a constant.

The batch axis stays symbolic where the trace shows it flowing from the input: the
example's batch size reaches ``forward`` as a :class:`BatchSize` in ``x.shape``, so a
``reshape(x.shape[0], -1)`` is written with ONNX's "copy this dimension" and not the number.
Where the batch size enters the graph as a plain number, the export fixes the batch
dimension instead of writing a graph that would be wrong at another size.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import array_api_compat
import numpy as np

from ... import backends
from .._errors import OnnxExportError

__all__ = [
    "BatchDerived",
    "BatchSize",
    "ExportArray",
    "Graph",
    "active_graph",
    "batch_related",
    "tracing",
]

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


class BatchSize(int):
    """The example's batch size as it appears in a traced array's ``shape``: an ``int``
    that remembers where it came from. Arithmetic on it gives a :class:`BatchDerived`."""

    __slots__ = ()

    def _derived(self, value: Any) -> Any:
        return BatchDerived(value) if isinstance(value, int) else value

    def __add__(self, other: Any) -> Any:
        return self._derived(int(self) + other)

    def __sub__(self, other: Any) -> Any:
        return self._derived(int(self) - other)

    def __mul__(self, other: Any) -> Any:
        return self._derived(int(self) * other)

    def __floordiv__(self, other: Any) -> Any:
        return self._derived(int(self) // other)

    def __mod__(self, other: Any) -> Any:
        return self._derived(int(self) % other)

    def __rsub__(self, other: Any) -> Any:
        return self._derived(other - int(self))

    def __rfloordiv__(self, other: Any) -> Any:
        return self._derived(other // int(self))

    __radd__ = __add__
    __rmul__ = __mul__


class BatchDerived(int):
    """A number computed from the batch size (``2 * x.shape[0]``): the graph cannot keep it
    symbolic, so where one reaches a shape the export fixes the batch."""

    __slots__ = ()


def batch_related(value: Any) -> bool:
    """Whether ``value`` is the batch size or was computed from it."""
    return type(value) is BatchSize or type(value) is BatchDerived


def host_dtype(dtype: Any) -> np.dtype[Any]:
    """The NumPy dtype of a backend dtype (``torch.float32``, ``numpy.float32`` and
    array-api-strict's ``float32`` alike)."""
    try:
        return np.dtype(dtype)  # type: ignore[no-any-return]
    except TypeError:  # not NumPy's: read its name
        return np.dtype(str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1])


class Graph:
    """The nodes and initializers written so far, and the naming and batch bookkeeping.

    Parameters
    ----------
    xp : namespace
        The backend the model computes on.
    opset : int
        The default domain's opset the nodes are written for.
    """

    def __init__(self, xp: Any, opset: int) -> None:
        import onnx  # the extra; checked by the caller

        self.onnx = onnx
        self.xp = xp
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: dict[str, Any] = {}
        self.scope: list[str] = []
        #: Why the batch dimension cannot stay symbolic (empty while it can).
        self.fixed_batch: list[str] = []
        #: An input's ``(name, axis)`` that holds the batch, read where a shape needs it.
        self.batch_source: tuple[str, int] | None = None
        self._batch_size_name: str | None = None
        self._taken: set[str] = set()
        self._counts: dict[str, int] = {}
        self._constants: dict[tuple[Any, ...], str] = {}

    # -- names --------------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        """A value or node name not used yet, built from ``hint``."""
        count = self._counts.get(hint, 0)
        while True:
            name = hint if count == 0 else f"{hint}_{count}"
            count += 1
            if name not in self._taken:
                self._counts[hint] = count
                self._taken.add(name)
                return name

    def reserve(self, name: str) -> None:
        """Claim ``name`` (an input's, output's or parameter's)."""
        self._taken.add(name)

    # -- constants ------------------------------------------------------------------------

    def initializer(self, name: str, value: np.ndarray) -> str:
        """Add ``value`` under ``name`` (a parameter's state_dict key) once."""
        if name not in self.initializers:
            self.initializers[name] = self.onnx.numpy_helper.from_array(
                np.asarray(value, order="C"), name
            )
        return name

    def constant(self, value: Any, dtype: Any = None) -> str:
        """A constant (a host or backend array, or a Python number) as an initializer,
        in ``dtype`` when given; equal small constants are written once."""
        # np.asarray, not ascontiguousarray: that one turns a 0-d constant into shape (1,).
        host = np.asarray(backends.to_numpy(value) if _is_backend_array(value) else value)
        if dtype is not None:
            host = host.astype(host_dtype(dtype))
        key = None
        if host.size <= 64:
            key = (host.dtype.str, host.shape, host.tobytes())
            known = self._constants.get(key)
            if known is not None:
                return known
        name = self.fresh("const")
        self.initializer(name, host)
        if key is not None:
            self._constants[key] = name
        return name

    def ints(self, values: Sequence[int]) -> str:
        """A 1-D int64 constant (shapes, axes, pads)."""
        return self.constant(np.asarray([int(v) for v in values], dtype=np.int64))

    def scalar(self, value: float, dtype: Any) -> str:
        """A 0-d constant of ``dtype``."""
        return self.constant(np.asarray(value, dtype=host_dtype(dtype)))

    # -- nodes ----------------------------------------------------------------------------

    def node(
        self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attributes: Any
    ) -> list[str]:
        """Write one node; returns its output names."""
        where = "/".join(self.scope)
        base = f"/{where}/{op_type}" if where else f"/{op_type}"
        names = [self.fresh(f"{base}_output_{i}") for i in range(outputs)]
        self.nodes.append(
            self.onnx.helper.make_node(
                op_type,
                list(inputs),
                names,
                name=self.fresh(base),
                **{k: v for k, v in attributes.items() if v is not None},
            )
        )
        return names

    def one(self, op_type: str, inputs: Sequence[str], **attributes: Any) -> str:
        """Write a one-output node; returns its output name."""
        return self.node(op_type, inputs, 1, **attributes)[0]

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: bool = True) -> str:
        """``Reduce*`` over ``axes``: an attribute before the opset that made it an input
        (13 for ReduceSum, 18 for the others)."""
        since = 13 if op_type == "ReduceSum" else 18
        if self.opset >= since:
            return self.one(op_type, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.one(op_type, [x], axes=[int(a) for a in axes], keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self.one("Unsqueeze", [x, self.ints(axes)])

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self.one("Squeeze", [x, self.ints(axes)])

    def shape_of(self, x: str, start: int | None = None, end: int | None = None) -> str:
        """``Shape(x)[start:end]``, computed by the graph (the batch stays symbolic)."""
        whole = self.one("Shape", [x])
        if start is None and end is None:
            return whole
        starts = self.ints([0 if start is None else start])
        ends = self.ints([INT64_MAX if end is None else end])
        return self.one("Slice", [whole, starts, ends])

    # -- arrays ---------------------------------------------------------------------------

    def wrap(
        self, value: Any, name: str, batch_axis: int | None, lost: bool = False
    ) -> ExportArray:
        """The traced array holding ``value`` under ``name``."""
        return ExportArray(value, name, self, batch_axis, lost)

    def name_of(self, value: Any, dtype: Any = None) -> str:
        """The ONNX name of an operand: a traced array's own, or a constant (in ``dtype``
        when given) for anything else."""
        if type(value) is ExportArray:
            if dtype is not None and host_dtype(value.dtype) != host_dtype(dtype):
                return self.one("Cast", [value.name], to=onnx_type(self.onnx, dtype))
            return value.name
        return self.constant(value, dtype)

    def batch_size_name(self) -> str | None:
        """A 1-element int64 value holding the batch size, read from an input's shape
        (written once, where first needed)."""
        if self.batch_source is None:
            return None
        if self._batch_size_name is None:
            name, axis = self.batch_source
            self._batch_size_name = self.shape_of(name, axis, axis + 1)
        return self._batch_size_name

    def fix_batch(self, reason: str) -> None:
        """Record that the batch size entered the graph as a number (``reason`` says where)."""
        if reason not in self.fixed_batch:
            self.fixed_batch.append(reason)

    @contextlib.contextmanager
    def within(self, name: str) -> Iterator[None]:
        """Name the nodes written inside the block after module ``name``."""
        self.scope.append(name)
        try:
            yield
        finally:
            self.scope.pop()


def onnx_type(onnx: Any, dtype: Any) -> int:
    """ONNX's element-type code of a backend dtype."""
    try:
        return int(onnx.helper.np_dtype_to_tensor_dtype(host_dtype(dtype)))
    except (KeyError, TypeError, ValueError):
        raise OnnxExportError(f"dtype {dtype} has no ONNX element type") from None


def _is_backend_array(value: Any) -> bool:
    return not isinstance(
        value, np.ndarray | np.generic | int | float | bool
    ) and array_api_compat.is_array_api_obj(value)


_ACTIVE: list[Graph] = []


def active_graph() -> Graph:
    """The graph being written (an error outside :func:`tracing`)."""
    if not _ACTIVE:
        raise OnnxExportError(
            "a traced array was used after its export ended; keep it inside the model's forward"
        )
    return _ACTIVE[-1]


@contextlib.contextmanager
def tracing(graph: Graph) -> Iterator[Graph]:
    """Make ``graph`` the one traced arrays write to inside the block."""
    _ACTIVE.append(graph)
    try:
        yield graph
    finally:
        _ACTIVE.pop()


def _host_read(what: str) -> OnnxExportError:
    return OnnxExportError(
        f"the model reads a value computed from its input on the host ({what}): an exported "
        "graph cannot repeat that Python decision or number for other inputs. Compute it with "
        "array functions (e.g. xp.where instead of an if), or outside the model"
    )


def _binary(name: str, reflected: bool = False) -> Any:
    if reflected:

        def method(self: ExportArray, other: Any) -> Any:
            return getattr(self.__array_namespace__(), name)(other, self)

    else:

        def method(self: ExportArray, other: Any) -> Any:
            return getattr(self.__array_namespace__(), name)(self, other)

    method.__name__ = f"__{'r' if reflected else ''}{name}__"
    return method


def _unary(name: str) -> Any:
    def method(self: ExportArray) -> Any:
        return getattr(self.__array_namespace__(), name)(self)

    method.__name__ = f"__{name}__"
    return method


class ExportArray:
    """An array inside an export: the model's value plus the ONNX value that holds it.

    It behaves as an Array API array of the model's backend (``shape``, ``dtype``,
    operators, indexing, ``__array_namespace__``); what it computes is also written to the
    graph. Reading its value on the host (``float(x)``, ``if x > 0``) is an error: the graph
    could not repeat that for other inputs.
    """

    __slots__ = ("_value", "batch_axis", "graph", "lost", "name")

    # NumPy defers to the reflected operators below instead of converting.
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(
        self, value: Any, name: str, graph: Graph, batch_axis: int | None, lost: bool = False
    ) -> None:
        self._value = value
        self.name = name
        self.graph = graph
        self.batch_axis = batch_axis
        #: Its shape depends on the batch in a way no axis says (a batch concatenated with
        #: itself, merged into another axis): a shape built from its sizes fixes the batch.
        self.lost = lost and batch_axis is None

    @property
    def shape(self) -> tuple[int, ...]:
        sizes = [int(n) for n in self._value.shape]
        if self.batch_axis is not None:
            sizes[self.batch_axis] = BatchSize(sizes[self.batch_axis])
        return tuple(sizes)

    @property
    def ndim(self) -> int:
        return int(self._value.ndim)

    @property
    def dtype(self) -> Any:
        return self._value.dtype

    @property
    def device(self) -> Any:
        return array_api_compat.device(self._value)

    @property
    def size(self) -> int:
        return math.prod(int(n) for n in self._value.shape)

    @property
    def T(self) -> Any:
        return self.__array_namespace__().permute_dims(self, tuple(range(self.ndim))[::-1])

    @property
    def mT(self) -> Any:
        return self.__array_namespace__().matrix_transpose(self)

    def __array_namespace__(self, api_version: str | None = None) -> Any:
        from ._namespace import export_namespace

        return export_namespace(self.graph.xp)

    def __getitem__(self, key: Any) -> Any:
        from ._indexing import getitem

        return getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise OnnxExportError(
            "the model writes into an array in place (x[...] = v); an exported graph has no "
            "in-place writes: build the result with xp.where or xp.concat"
        )

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        if self.batch_axis == 0 or self.lost:
            self.graph.fix_batch("a Python loop over the batch")
        return (self[i, ...] for i in range(int(self._value.shape[0])))

    def __bool__(self) -> bool:
        raise _host_read("its truth value")

    def __float__(self) -> float:
        raise _host_read("float()")

    def __int__(self) -> int:
        raise _host_read("int()")

    def __index__(self) -> int:
        raise _host_read("an index")

    def __complex__(self) -> complex:
        raise _host_read("complex()")

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        raise _host_read("a NumPy conversion")

    @property
    def __xpnet_value__(self) -> Any:
        raise _host_read("xpnet.to_numpy")

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        raise _host_read("DLPack")

    def __repr__(self) -> str:
        return f"ExportArray({self.name!r}, shape={tuple(self._value.shape)}, dtype={self.dtype})"

    __hash__ = None  # type: ignore[assignment]

    __add__ = _binary("add")
    __radd__ = _binary("add", reflected=True)
    __sub__ = _binary("subtract")
    __rsub__ = _binary("subtract", reflected=True)
    __mul__ = _binary("multiply")
    __rmul__ = _binary("multiply", reflected=True)
    __truediv__ = _binary("divide")
    __rtruediv__ = _binary("divide", reflected=True)
    __floordiv__ = _binary("floor_divide")
    __rfloordiv__ = _binary("floor_divide", reflected=True)
    __mod__ = _binary("remainder")
    __rmod__ = _binary("remainder", reflected=True)
    __pow__ = _binary("pow")
    __rpow__ = _binary("pow", reflected=True)
    __matmul__ = _binary("matmul")
    __rmatmul__ = _binary("matmul", reflected=True)
    __and__ = _binary("bitwise_and")
    __rand__ = _binary("bitwise_and", reflected=True)
    __or__ = _binary("bitwise_or")
    __ror__ = _binary("bitwise_or", reflected=True)
    __xor__ = _binary("bitwise_xor")
    __rxor__ = _binary("bitwise_xor", reflected=True)
    __lt__ = _binary("less")
    __le__ = _binary("less_equal")
    __gt__ = _binary("greater")
    __ge__ = _binary("greater_equal")
    __eq__ = _binary("equal")
    __ne__ = _binary("not_equal")
    __neg__ = _unary("negative")
    __pos__ = _unary("positive")
    __abs__ = _unary("abs")
    __invert__ = _unary("bitwise_invert")
