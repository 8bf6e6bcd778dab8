"""The operator table and what an operator's implementation is handed.

Each ONNX operator is one function ``fn(call) -> output or tuple of outputs`` registered
with :func:`operator`. ``call`` gives its inputs, either as arrays of the backend in use
(:meth:`Call.array`) or, for inputs that only shape the computation (a Reshape's shape, a
Slice's starts), as host values known before the data is seen (:meth:`Call.host`). A node
whose inputs are all host values (constants, initializers read as shapes, a Shape's output)
runs on the host with NumPy, once per call, so that shape arithmetic never touches the
device: a traced or compiled step sees only constants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from ... import backends
from ...functional._autodiff import primal
from ...functional._validation import is_lazy
from .._errors import OnnxImportError, UnsupportedOnnxError
from .._reader import NodeSpec

__all__ = ["OPERATORS", "Call", "Host", "OperatorDef", "host_dtype", "operator"]


class Host:
    """A value known on the host (a NumPy array): a constant, a shape, or what was computed
    from those alone."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = np.asarray(value)

    def __repr__(self) -> str:
        return f"Host({self.value!r})"


@dataclass(frozen=True)
class OperatorDef:
    """An operator's implementation and how it may run."""

    fn: Callable[[Call], Any]
    #: Whether a node with only host inputs may run on the host (not Dropout in training,
    #: say, which draws random numbers on the backend).
    foldable: bool
    #: The input positions read on the host (shapes, axes, scales): an initializer read
    #: only there is a constant of the model, not a parameter.
    host_inputs: frozenset[int]


#: ONNX operator name -> implementation.
OPERATORS: dict[str, OperatorDef] = {}

_REQUIRED = object()


def operator(
    *names: str, foldable: bool = True, host_inputs: tuple[int, ...] = ()
) -> Callable[[Callable[[Call], Any]], Any]:
    """Register ``fn`` as the implementation of the ONNX operators ``names``."""

    def register(fn: Callable[[Call], Any]) -> Callable[[Call], Any]:
        for name in names:
            OPERATORS[name] = OperatorDef(fn, foldable, frozenset(host_inputs))
        return fn

    return register


class Call:
    """One node being run: its inputs, attributes, opset and mode."""

    def __init__(
        self,
        node: NodeSpec,
        source: str,
        opset: int,
        values: Sequence[Any],
        on_host: bool,
        place: Callable[[np.ndarray, Any], Any],
        training: bool,
        update: Callable[[int, Any], None],
    ) -> None:
        self.node = node
        self.source = source
        self.opset = opset
        self.values = list(values)
        self.on_host = on_host
        self._place = place
        self.training = training
        self._update = update

    def update(self, index: int, value: Any) -> None:
        """Report the new value of state read through input ``index`` (a batch norm's
        running statistics, in training): the model keeps it where it is a buffer."""
        self._update(index, value)

    def place_host(self, value: np.ndarray, like: Any) -> Any:
        """A host array as an array beside ``like`` (itself, when the node runs on the
        host)."""
        return value if self.on_host else self._place(value, like)

    # -- errors -----------------------------------------------------------------------------

    def where(self) -> str:
        return f"{self.source}: {self.node.label}"

    def fail(self, message: str) -> OnnxImportError:
        """An error about this node's inputs or attributes (raise it)."""
        return OnnxImportError(f"{self.where()}: {message}")

    def unsupported(self, message: str) -> UnsupportedOnnxError:
        """An error for a valid use xpnet does not implement (raise it)."""
        return UnsupportedOnnxError(f"{self.where()}, opset {self.opset}: {message}")

    # -- attributes -------------------------------------------------------------------------

    def attr(self, name: str, default: Any = _REQUIRED) -> Any:
        """The attribute ``name``, or ``default`` when the node leaves it out."""
        value = self.node.attributes.get(name, _REQUIRED)
        if value is _REQUIRED:
            if default is _REQUIRED:
                raise self.fail(f"attribute {name!r} is required")
            return default
        return value

    def int_attr(self, name: str, default: Any = _REQUIRED) -> int:
        value = self.attr(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise self.fail(f"attribute {name!r}: expected an int, got {value!r}")
        return int(value)

    def float_attr(self, name: str, default: Any = _REQUIRED) -> float:
        value = self.attr(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise self.fail(f"attribute {name!r}: expected a float, got {value!r}")
        return float(value)

    def ints_attr(self, name: str, default: Any = _REQUIRED) -> list[int] | None:
        value = self.attr(name, default)
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
        ):
            raise self.fail(f"attribute {name!r}: expected a list of ints, got {value!r}")
        return [int(v) for v in value]

    def axis_attr(self, rank: int, default: Any = _REQUIRED, name: str = "axis") -> int:
        """The axis attribute ``name`` of an operator on a rank-``rank`` input, made
        non-negative (ONNX counts negative axes from the end)."""
        axis = self.int_attr(name, default)
        if not -rank <= axis < rank:
            raise self.fail(f"attribute {name!r}: {axis} is out of range for rank {rank}")
        return axis % rank

    # -- inputs -----------------------------------------------------------------------------

    def count(self) -> int:
        return len(self.values)

    def has(self, index: int) -> bool:
        """Whether input ``index`` is given (optional inputs may be left out)."""
        return index < len(self.values) and self.values[index] is not None

    def array(self, index: int, what: str = "") -> Any:
        """Input ``index`` as an array: of the backend in use, or NumPy when the node runs
        on the host."""
        if not self.has(index):
            raise self.fail(f"input {index}{' (' + what + ')' if what else ''} is required")
        value = self.values[index]
        if isinstance(value, Host):
            return self.place_host(value.value, self.like())
        return value

    def optional(self, index: int) -> Any:
        """Input ``index`` as an array, or ``None`` where it is left out."""
        return self.array(index) if self.has(index) else None

    def like(self) -> Any:
        """An input array on the backend, for placing host values beside it (or None)."""
        for value in self.values:
            if value is not None and not isinstance(value, Host):
                return value
        return None

    def host(self, index: int, what: str) -> np.ndarray | None:
        """Input ``index`` as a NumPy array (``None`` if left out): a value the
        computation's shape depends on. Host values are read as they are; an eager array
        is read from its device; a traced one cannot be."""
        if not self.has(index):
            return None
        value = self.values[index]
        if isinstance(value, Host):
            return value.value
        array = primal(value)
        if is_lazy(array):
            raise self.unsupported(
                f"input {index} ({what}) is computed from the data, which a traced or lazy "
                "array cannot show before it runs; give it as a constant or initializer"
            )
        return np.asarray(backends.to_numpy(array))  # an eager array: read on the host

    def host_ints(self, index: int, what: str) -> list[int] | None:
        value = self.host(index, what)
        if value is None:
            return None
        if value.dtype.kind not in "iu":
            raise self.fail(f"input {index} ({what}): expected integers, got {value.dtype}")
        return [int(v) for v in value.reshape(-1)]

    def host_scalar(self, index: int, what: str) -> float | None:
        value = self.host(index, what)
        if value is None:
            return None
        if value.size != 1:
            raise self.fail(f"input {index} ({what}): expected one value, got shape {value.shape}")
        return value.reshape(-1)[0].item()  # type: ignore[no-any-return]


def namespace(*arrays: Any) -> Any:
    """The namespace of the given arrays (``None`` entries skipped): NumPy's on the host, the
    recording namespace when one is tracked."""
    return array_api_compat.array_namespace(*(a for a in arrays if a is not None))


def shape(x: Any) -> tuple[int, ...]:
    """``x``'s shape as ints."""
    return tuple(int(n) for n in primal(x).shape)


def host_dtype(x: Any) -> np.dtype[Any]:
    """The NumPy dtype of ``x``'s dtype, whatever its library (``torch.float32``,
    ``array_api_strict.float32`` and ``float32`` all end in the name)."""
    dtype = primal(x).dtype
    return np.dtype(str(getattr(dtype, "name", dtype)).rsplit(".", 1)[-1])
