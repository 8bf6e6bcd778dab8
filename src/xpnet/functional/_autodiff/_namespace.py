"""The recording namespace: what ``array_namespace(x)`` returns for a tracked array.

Code written against the standard asks its arrays for their namespace and calls its
functions. For a tracked array that namespace is a :class:`RecordingNamespace` around the
backend's own: each function with a pullback (``STANDARD`` and ``LINALG``, filled by the
rule modules) computes on the backend values and records one step; functions whose results
carry no gradient (comparisons, ``argmax``, ``zeros_like``, dtype queries) compute and
return constants; any other function refuses arrays that carry a gradient, naming itself,
rather than return a result the gradient cannot flow through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import array_api_compat

from ._common import carries_gradient, raw_all
from ._tape import OPERATORS, DifferentiationError, TrackedArray

__all__ = ["LINALG", "NO_GRADIENT", "STANDARD", "RecordingNamespace", "recording_namespace"]

#: Standard functions with a pullback: name -> rule ``(xp, *args, **kwargs) -> tracked``.
STANDARD: dict[str, Callable[..., Any]] = {}
#: The same for the ``linalg`` extension.
LINALG: dict[str, Callable[..., Any]] = {}

#: Functions whose results carry no gradient: integer or boolean results, arrays made
#: from shapes and fill values, and queries about dtypes.
NO_GRADIENT = frozenset(
    {
        # comparisons and predicates
        "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
        "isfinite", "isinf", "isnan", "signbit",
        "logical_and", "logical_or", "logical_not", "logical_xor",
        "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_invert",
        "bitwise_left_shift", "bitwise_right_shift",
        # searching, counting and testing
        "argmax", "argmin", "argsort", "nonzero", "count_nonzero", "searchsorted",
        "all", "any",
        # creation from shapes, fill values, or another array's shape only
        "arange", "empty", "empty_like", "eye", "full", "full_like", "linspace",
        "ones", "ones_like", "zeros", "zeros_like",
        # dtypes and information
        "can_cast", "finfo", "iinfo", "isdtype", "result_type", "__array_namespace_info__",
    }
)  # fmt: skip

_DTYPES = frozenset(
    {
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "complex64", "complex128",
        "e", "inf", "nan", "pi", "newaxis", "__array_api_version__",
    }
)  # fmt: skip

_EXTENSIONS = ("linalg", "fft")


def register(name: str, table: dict[str, Callable[..., Any]] = STANDARD) -> Callable[..., Any]:
    """Register the decorated rule as the recorded form of the standard function ``name``."""

    def decorate(rule: Callable[..., Any]) -> Callable[..., Any]:
        table[name] = rule
        return rule

    return decorate


def wrap_result(value: Any, xp: Any) -> Any:
    """A function's result with its arrays as constants (tuples and named tuples kept)."""
    if isinstance(value, tuple):
        items = [wrap_result(v, xp) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [wrap_result(v, xp) for v in value]
    if value is not None and array_api_compat.is_array_api_obj(value):
        return TrackedArray(value, None, 0, xp)
    return value


def _flat_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    found: list[Any] = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, list | tuple):
            found.extend(value)
        else:
            found.append(value)
    return found


def passthrough(xp: Any, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``fn`` on the backend values; its arrays come back as constants."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        raw_args = tuple(raw_all(a) for a in args)
        raw_kwargs = {k: raw_all(v) for k, v in kwargs.items()}
        return wrap_result(fn(*raw_args, **raw_kwargs), xp)

    call.__name__ = name
    return call


def refuse_gradients(xp: Any, fn: Callable[..., Any], name: str, where: str) -> Callable[..., Any]:
    """``fn`` for arrays that carry no gradient; a clear error for those that do."""
    inner = passthrough(xp, fn, name)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if any(carries_gradient(v) for v in _flat_arguments(args, kwargs)):
            raise DifferentiationError(
                f"{where}{name}: has no pullback in xpnet, so it cannot take an array that "
                "carries a gradient inside a differentiated function; use the Array API "
                "standard's functions, xpnet.stop_gradient(x) where no gradient should flow, "
                "or make it an op of its own (xpnet.functional.primitive and defvjp)"
            )
        return inner(*args, **kwargs)

    call.__name__ = name
    return call


class RecordingNamespace:
    """A backend namespace whose functions record their pullbacks (module docstring).

    Parameters
    ----------
    xp : namespace
        The backend's namespace (as ``array_api_compat.array_namespace`` gives it).
    table : dict, optional
        The rules of this namespace (``STANDARD``, or ``LINALG`` for ``linalg``).
    prefix : str
        How errors name this namespace's functions (``""`` or ``"linalg."``).
    top : namespace, optional
        For an extension (``linalg``), the backend's main namespace, which its rules and
        results use.
    """

    def __init__(
        self,
        xp: Any,
        table: dict[str, Callable[..., Any]] | None = None,
        prefix: str = "",
        top: Any = None,
    ) -> None:
        self._backend = xp
        self._top = xp if top is None else top
        self._table = STANDARD if table is None else table
        self._prefix = prefix
        self.__name__ = f"xpnet.recording({getattr(self._top, '__name__', self._top)})" + (
            f".{prefix[:-1]}" if prefix else ""
        )

    def __getattr__(self, name: str) -> Any:
        if (
            name.startswith("__")
            and name != "__array_namespace_info__"
            and (name != "__array_api_version__")
        ):
            raise AttributeError(name)
        xp = self._backend
        rule = self._table.get(name)
        if rule is not None:
            found: Any = functools.partial(rule, self._top)
        elif not self._prefix and name in _EXTENSIONS:
            table = LINALG if name == "linalg" else {}
            found = RecordingNamespace(getattr(xp, name), table, f"{name}.", xp)
        elif name in _DTYPES:
            found = getattr(xp, name)
        else:
            attribute = getattr(xp, name)  # AttributeError names what the backend lacks
            if not callable(attribute) or isinstance(attribute, type):
                found = attribute
            elif name in NO_GRADIENT and not self._prefix:
                found = passthrough(self._top, attribute, name)
            else:
                found = refuse_gradients(self._top, attribute, name, self._prefix)
        object.__setattr__(self, name, found)  # looked up once per namespace
        return found

    def __repr__(self) -> str:
        return f"<{self.__name__}>"


_namespaces: dict[int, tuple[Any, RecordingNamespace]] = {}


def recording_namespace(xp: Any) -> RecordingNamespace:
    """The recording namespace around the backend namespace ``xp`` (one per backend)."""
    known = _namespaces.get(id(xp))
    if known is None or known[0] is not xp:
        known = _namespaces[id(xp)] = (xp, RecordingNamespace(xp))
    return known[1]


OPERATORS["__namespace__"] = recording_namespace
