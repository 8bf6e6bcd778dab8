"""Argument checks shared by the ops: each error names the argument, what was expected
and what came."""

from __future__ import annotations

import numbers
import types
from collections.abc import Sequence
from typing import Any

import array_api_compat

from ..backends import device_profile
from ..config import get_value_checks

__all__ = [
    "array_namespace",
    "as_pair",
    "as_tuple",
    "check_float",
    "check_ndim",
    "check_same_dtype",
    "check_shape",
    "constant",
    "host_reads_are_cheap",
    "is_lazy",
    "namespace_of",
    "reads_values",
]


# Whether an array is lazy is a function of its type, and so is its namespace where that is
# a module (NumPy, torch, CuPy, JAX, array-api-strict; not a namespace object an array
# hands out per instance, like the counting backend's); array_api_compat works either out
# by a chain of checks on every call, and every op asks several times per call, so the
# answers are kept per type.
_NAMESPACES: dict[type, Any] = {}
_LAZY: dict[type, bool] = {}


def _is_array(value: Any) -> bool:
    if type(value) in _NAMESPACES:
        return True
    return value is not None and array_api_compat.is_array_api_obj(value)


def array_namespace(x: Any) -> Any:
    """``array_api_compat.array_namespace(x)``, remembered per array type where the
    namespace is a module (asked afresh for libraries whose arrays hand out namespaces of
    their own)."""
    kind = type(x)
    xp = _NAMESPACES.get(kind)
    if xp is None:
        xp = array_api_compat.array_namespace(x)
        if isinstance(xp, types.ModuleType):
            _NAMESPACES[kind] = xp
    return xp


def namespace_of(**arrays: Any) -> Any:
    """Return the namespace shared by the named arrays (``None`` entries are skipped).

    Raises
    ------
    TypeError
        If an entry is not an array, or the arrays come from different libraries.
    ValueError
        If the arrays live on different devices.
    """
    present = {name: a for name, a in arrays.items() if a is not None}
    for name, value in present.items():
        if not _is_array(value):
            raise TypeError(f"{name}: expected an array, got {type(value).__name__}")
    names = list(present)
    if not names:  # every argument None: name the first, which the op needs
        raise TypeError(f"{next(iter(arrays), 'input')}: expected an array, got None")
    first = names[0]
    xp = array_namespace(present[first])
    if len(names) == 1:
        return xp  # no device to compare with
    # A traced array (inside jax.jit) has no device to compare; the trace's owner decides.
    traced = any(is_lazy(a) for a in present.values())
    first_device = None if traced else array_api_compat.device(present[first])
    for name in names[1:]:
        other = array_namespace(present[name])
        if other is not xp:
            raise TypeError(
                f"{name}: expected an array of the same library as {first} "
                f"({xp.__name__}), got one of {other.__name__}"
            )
        device = None if traced else array_api_compat.device(present[name])
        if device != first_device:
            raise ValueError(
                f"{name}: expected an array on the same device as {first} "
                f"({first_device}), got one on {device}"
            )
    return xp


def check_ndim(name: str, x: Any, allowed: Sequence[int], layout: str) -> None:
    """Raise ``ValueError`` unless ``x.ndim`` is in ``allowed`` (``TypeError`` for a value
    that is no array at all, such as None)."""
    if not _is_array(x):
        raise TypeError(f"{name}: expected an array, got {type(x).__name__}")
    if x.ndim not in allowed:
        wanted = " or ".join(f"{n}-D" for n in allowed)
        raise ValueError(f"{name}: expected a {wanted} array {layout}, got shape {tuple(x.shape)}")


def check_shape(name: str, x: Any, expected: tuple[int, ...], why: str = "") -> None:
    """Raise ``ValueError`` unless ``x.shape == expected``."""
    if tuple(x.shape) != tuple(expected):
        extra = f" ({why})" if why else ""
        raise ValueError(f"{name}: expected shape {tuple(expected)}{extra}, got {tuple(x.shape)}")


def check_float(xp: Any, name: str, x: Any) -> None:
    """Raise ``TypeError`` unless ``x`` has a real floating dtype."""
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{name}: expected a floating-point array (float32 or float64), got dtype {x.dtype}"
        )


def check_same_dtype(name: str, x: Any, reference_name: str, reference: Any) -> None:
    """Raise ``TypeError`` if two arrays differ in dtype (xpnet never upcasts silently)."""
    if x.dtype != reference.dtype:
        raise TypeError(
            f"{name}: expected dtype {reference.dtype} to match {reference_name}, got "
            f"{x.dtype}; convert one of them explicitly"
        )


#: How an int-or-tuple argument of each length is described in errors.
TUPLE_KIND = {1: "a 1-tuple of ints", 2: "a pair of ints", 3: "3 ints"}


def as_tuple(name: str, value: Any, length: int, *, minimum: int) -> tuple[int, ...]:
    """Turn an int or a sequence of ``length`` ints into a tuple of ``length`` ints,
    checking each is at least ``minimum`` (torch's ``stride=2`` or ``stride=(2,)``)."""
    kind = TUPLE_KIND.get(length, f"{length} ints")
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected an int or {kind}, got {value!r}")
    if isinstance(value, numbers.Integral):  # NumPy's integer scalars too, as for torch
        values = (int(value),) * length
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == length
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        values = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name}: expected an int or {kind}, got {value!r}")
    if min(values) < minimum:
        bound = "positive" if minimum == 1 else f"at least {minimum}"
        if minimum == 0:
            bound = "non-negative"
        raise ValueError(f"{name}: expected {bound} values, got {value!r}")
    return values


def as_pair(name: str, value: Any, *, minimum: int) -> tuple[int, int]:
    """Turn an int or a pair of ints into a pair, checking each is at least ``minimum``."""
    first, second = as_tuple(name, value, 2, minimum=minimum)
    return (first, second)


def constant(xp: Any, value: float, like: Any) -> Any:
    """Return ``value`` as a 0-d array with ``like``'s dtype and device."""
    return xp.asarray(value, dtype=like.dtype, device=array_api_compat.device(like))


def is_lazy(x: Any) -> bool:
    """Whether ``x`` has no value to read yet: a JAX tracer (inside ``jax.jit``) or a Dask
    array. Only a class check, so it never forces a computation."""
    kind = type(x)
    lazy = _LAZY.get(kind)
    if lazy is None:
        lazy = _LAZY[kind] = array_api_compat.is_dask_array(x) or any(
            cls.__name__ == "Tracer" and cls.__module__.startswith("jax") for cls in kind.__mro__
        )
    return lazy


def host_reads_are_cheap(*arrays: Any) -> bool:
    """Whether reading these arrays' values on the host costs no device sync: they live in
    host memory (the device profile says so) and are not lazy. Unlike :func:`reads_values`,
    :func:`xpnet.config.value_checks` does not change the answer."""
    return all(not is_lazy(a) and device_profile(a).cheap_sync for a in arrays if a is not None)


def reads_values(*arrays: Any) -> bool:
    """Whether argument checks may read these arrays' values on the host now.

    :func:`xpnet.config.value_checks` decides when set; automatically, yes unless an array
    is lazy (:func:`is_lazy`) or lives where a read stalls the device (a GPU).
    """
    present = [a for a in arrays if a is not None]
    if any(is_lazy(a) for a in present):
        return False
    forced = get_value_checks()
    if forced is not None:
        return forced
    return all(device_profile(a).cheap_sync for a in present)
