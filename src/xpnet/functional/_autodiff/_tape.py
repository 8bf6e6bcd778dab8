"""The recording: arrays that remember how they were made, and the reverse sweep.

Inside a differentiated function every array is a :class:`TrackedArray`: the backend's own
array (its *value*) plus the :class:`Node` that made it. A node holds its parents (the
nodes of the inputs it was computed from) and one pullback, a function from the cotangents
of its outputs to the cotangents of those parents. Nothing else is kept: there is no global
tape, the graph is the nodes reachable from the output (define-by-run, as Chainer's
``Variable`` and ``FunctionNode``).

Nodes are numbered in creation order, which the reverse sweep (``_sweep.py``) follows.

A tracked array without a node is a *constant*: it takes part in the computation (and keeps
the recording namespace, so code that asks an array for its namespace keeps recording) but
carries no gradient. The inputs a caller does not differentiate are wrapped as constants.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import array_api_compat

from ... import backends
from .._validation import array_namespace as namespace_of

__all__ = [
    "DifferentiationError",
    "Node",
    "TrackedArray",
    "constant",
    "is_tracked",
    "leaf",
    "new_trace",
    "primal",
    "record",
    "record_many",
]

#: A node's pullback: cotangent of its output (a tuple of them, ``None`` where an output
#: received none, for nodes with several outputs) -> one cotangent per parent (or ``None``).
NodePullback = Callable[[Any], Sequence[Any]]

#: The operators of :class:`TrackedArray`, by standard function name; filled by
#: the rule modules (``_elementwise``, ``_manipulation``, ``_operators``, ...).
OPERATORS: dict[str, Callable[..., Any]] = {}

_sequence = itertools.count()
_traces = itertools.count(1)


class DifferentiationError(TypeError):
    """Something inside a differentiated function cannot be differentiated: an in-place
    write, a function without a pullback, or an array from another differentiation."""


class Node:
    """One recorded step: the parents it read and the pullback that reverses it.

    Attributes
    ----------
    name : str
        What made it (``"conv2d"``, ``"add"``, ``"getitem"``, ``"parameter"``), for errors
        and counts.
    parents : tuple of (Node, int)
        The nodes of the differentiated inputs and which of their outputs was read.
    pullback : callable or None
        See :data:`NodePullback`; ``None`` for leaves and once the sweep has used it.
    outputs : tuple of (shape, dtype)
        What each output looked like, to check and cast the cotangents that arrive.
    trace : int
        The differentiation this node belongs to.
    """

    __slots__ = ("name", "order", "outputs", "parents", "pullback", "trace")

    def __init__(
        self,
        name: str,
        parents: tuple[tuple[Node, int], ...],
        pullback: NodePullback | None,
        outputs: tuple[tuple[tuple[int, ...], Any], ...],
        trace: int,
    ) -> None:
        self.name = name
        self.parents = parents
        self.pullback = pullback
        self.outputs = outputs
        self.trace = trace
        self.order = next(_sequence)

    def __repr__(self) -> str:
        return f"Node({self.name}, #{self.order}, {len(self.parents)} parent(s))"


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape)


def _binary(name: str, reflected: bool = False) -> Callable[..., Any]:
    if reflected:

        def method(self: TrackedArray, other: Any) -> Any:
            return OPERATORS[name](self._xp, other, self, operator=True)

    else:

        def method(self: TrackedArray, other: Any) -> Any:
            return OPERATORS[name](self._xp, self, other, operator=True)

    method.__name__ = f"__{'r' if reflected else ''}{name}__"
    return method


def _unary(name: str) -> Callable[..., Any]:
    def method(self: TrackedArray) -> Any:
        return OPERATORS[name](self._xp, self)

    method.__name__ = f"__{name}__"
    return method


def _inplace(name: str, symbol: str) -> Callable[..., Any]:
    def method(self: TrackedArray, other: Any) -> Any:
        return OPERATORS["__inplace__"](self, other, name, symbol)

    method.__name__ = f"__i{name}__"
    return method


class TrackedArray:
    """A backend array recorded for differentiation (see the module docstring).

    It behaves as an Array API array: ``__array_namespace__`` gives a namespace whose
    functions record their pullbacks, and its operators, indexing and attributes follow the
    standard. Reading a value on the host (``float``, ``bool``, ``xpnet.to_numpy``) gives
    the value and carries no gradient, as torch's ``.item()`` does.
    """

    __slots__ = ("__weakref__", "_aliased", "_index", "_node", "_value", "_xp")

    _value: Any
    _node: Node | None
    _index: int
    _xp: Any
    _aliased: bool

    def __init__(self, value: Any, node: Node | None = None, index: int = 0, xp: Any = None):
        self._value = value
        self._node = node
        self._index = index
        self._xp = xp if xp is not None else namespace_of(value)
        # True once this array shares memory with another tracked array (a view was taken
        # of it, or it is one): an in-place update could not reach the other one.
        self._aliased = False

    # Operators, indexing and the namespace run the rules registered in OPERATORS.
    def __array_namespace__(self, api_version: str | None = None) -> Any:
        return OPERATORS["__namespace__"](self._xp)

    def __getitem__(self, key: Any) -> Any:
        return OPERATORS["__getitem__"](self._xp, self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        OPERATORS["__setitem__"](self, key, value)

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i, ...] for i in range(int(self.shape[0])))

    @property
    def T(self) -> Any:
        return OPERATORS["T"](self._xp, self)

    @property
    def mT(self) -> Any:
        return OPERATORS["matrix_transpose"](self._xp, self)

    def to_device(self, device: Any, /, *, stream: Any = None) -> Any:
        return OPERATORS["to_device"](self._xp, self, device, stream)

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
    __lshift__ = _binary("bitwise_left_shift")
    __rlshift__ = _binary("bitwise_left_shift", reflected=True)
    __rshift__ = _binary("bitwise_right_shift")
    __rrshift__ = _binary("bitwise_right_shift", reflected=True)
    __lt__ = _binary("less")
    __le__ = _binary("less_equal")
    __gt__ = _binary("greater")
    __ge__ = _binary("greater_equal")
    __eq__ = _binary("equal")
    __ne__ = _binary("not_equal")
    __hash__ = None  # type: ignore[assignment]
    __neg__ = _unary("negative")
    __pos__ = _unary("positive")
    __abs__ = _unary("abs")
    __invert__ = _unary("bitwise_invert")

    # Augmented assignment updates this array object (every name bound to it sees the new
    # value, as with an in-place update), recording the operation like any other; it is
    # refused where that would not match an in-place write (see _operators.inplace).
    __iadd__ = _inplace("add", "+=")
    __isub__ = _inplace("subtract", "-=")
    __imul__ = _inplace("multiply", "*=")
    __itruediv__ = _inplace("divide", "/=")
    __ifloordiv__ = _inplace("floor_divide", "//=")
    __imod__ = _inplace("remainder", "%=")
    __ipow__ = _inplace("pow", "**=")
    __imatmul__ = _inplace("matmul", "@=")
    __iand__ = _inplace("bitwise_and", "&=")
    __ior__ = _inplace("bitwise_or", "|=")
    __ixor__ = _inplace("bitwise_xor", "^=")
    __ilshift__ = _inplace("bitwise_left_shift", "<<=")
    __irshift__ = _inplace("bitwise_right_shift", ">>=")

    @property
    def __xpnet_value__(self) -> Any:
        """The backend array (no gradient): what host conversions read."""
        return self._value

    @property
    def shape(self) -> tuple[Any, ...]:
        return _shape(self._value)

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
    def size(self) -> int | None:
        size = array_api_compat.size(self._value)
        return None if size is None else int(size)

    @property
    def requires_grad(self) -> bool:
        """Whether a gradient flows through this array (torch's name)."""
        return self._node is not None

    def __repr__(self) -> str:
        kind = "constant" if self._node is None else self._node.name
        return f"TrackedArray({self._value!r}, from={kind})"

    def __str__(self) -> str:
        return str(self._value)

    def __format__(self, spec: str) -> str:
        return format(self._value, spec)

    # Host reads: the value, without a gradient.
    def __bool__(self) -> bool:
        return bool(self._value)

    def __float__(self) -> float:
        return float(self._value)

    def __int__(self) -> int:
        return int(self._value)

    def __index__(self) -> int:
        return int(self._value.__index__())

    def __complex__(self) -> complex:
        return complex(self._value)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d array")
        return int(self.shape[0])

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> Any:
        # The host boundary: a conversion the caller asked for (np.asarray(x)).
        host = backends.to_numpy(self._value)
        return host if dtype is None else host.astype(dtype)

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._value.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> Any:
        return self._value.__dlpack_device__()

    # NumPy ufuncs (``ndarray + x`` among them) run as the recording namespace's function
    # of the same name; other NumPy functions would compute on the value and drop the
    # gradient without a word, so they are refused, naming what to use instead.
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return OPERATORS["__ufunc__"](self, ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise DifferentiationError(
            f"numpy.{func.__name__} was called on an array recorded for differentiation; "
            "it would drop the gradient. Use the array's own namespace "
            "(xp = array_api_compat.array_namespace(x)), or xpnet.to_numpy(x) for the value"
        )


def is_tracked(x: Any) -> bool:
    """Whether ``x`` is an array recorded for differentiation."""
    return type(x) is TrackedArray


def primal(x: Any) -> Any:
    """The backend array inside ``x`` (``x`` itself when it is not tracked)."""
    return x._value if type(x) is TrackedArray else x


def constant(value: Any, xp: Any = None) -> TrackedArray:
    """``value`` as a tracked array that carries no gradient."""
    if type(value) is TrackedArray:
        return value if value._node is None else TrackedArray(value._value, None, 0, value._xp)
    return TrackedArray(value, None, 0, xp)


def new_trace() -> int:
    """A fresh differentiation's number (nodes of different ones must not mix)."""
    return next(_traces)


def leaf(value: Any, trace: int, name: str = "input") -> TrackedArray:
    """``value`` as an input whose gradient is wanted, in differentiation ``trace``."""
    if type(value) is TrackedArray:
        if value._node is not None:
            raise DifferentiationError(
                "differentiating with respect to an array that already carries a gradient "
                "(a gradient of a gradient): higher-order differentiation is not supported"
            )
        value = value._value
    xp = namespace_of(value)
    if not _is_float(xp, value):
        raise TypeError(
            f"{name}: only real floating-point arrays can be differentiated, got dtype "
            f"{value.dtype}"
        )
    node = Node(name, (), None, ((_shape(value), value.dtype),), trace)
    return TrackedArray(value, node, 0, xp)


def _trace_of(parents: Iterable[tuple[Node, int]]) -> int:
    trace = -1
    for node, _ in parents:
        if trace == -1:
            trace = node.trace
        elif node.trace != trace:
            raise DifferentiationError(
                "an array recorded in another differentiation was used here (kept from an "
                "earlier call, or captured from an outer one): higher-order or nested "
                "differentiation is not supported; pass it in as an argument, or use "
                "xpnet.stop_gradient on it"
            )
    return trace


def record(
    name: str,
    xp: Any,
    value: Any,
    parents: tuple[tuple[Node, int], ...],
    pullback: NodePullback,
) -> TrackedArray:
    """The tracked output of a one-output step (a constant when no parent carries a
    gradient, or when the output is not floating point: comparisons and integer results
    carry none)."""
    if not parents or not _is_float(xp, value):
        return TrackedArray(value, None, 0, xp)
    node = Node(name, parents, pullback, ((_shape(value), value.dtype),), _trace_of(parents))
    return TrackedArray(value, node, 0, xp)


def record_many(
    name: str,
    xp: Any,
    values: Sequence[Any],
    parents: tuple[tuple[Node, int], ...],
    pullback: NodePullback,
) -> list[TrackedArray]:
    """The tracked outputs of a step with several outputs (``unstack``,
    ``broadcast_arrays``): the pullback receives a tuple of cotangents, ``None`` for the
    outputs that received none."""
    if not parents or not all(_is_float(xp, v) for v in values):
        return [TrackedArray(v, None, 0, xp) for v in values]
    outputs = tuple((_shape(v), v.dtype) for v in values)
    node = Node(name, parents, pullback, outputs, _trace_of(parents))
    return [TrackedArray(v, node, i, xp) for i, v in enumerate(values)]


_float_dtypes: dict[tuple[type, Any], bool] = {}


def _is_float(xp: Any, value: Any) -> bool:
    dtype = value.dtype
    key = (type(dtype), dtype)  # never compares one library's dtypes with another's
    try:
        return _float_dtypes[key]
    except KeyError:
        found = _float_dtypes[key] = bool(xp.isdtype(dtype, "real floating"))
        return found
    except TypeError:  # an unhashable dtype
        return bool(xp.isdtype(dtype, "real floating"))
