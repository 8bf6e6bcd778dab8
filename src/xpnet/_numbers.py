"""What counts as a number where the API takes one: Python's, NumPy's scalars and 0-d
arrays of any backend (a ``torch.tensor(0.01)`` learning rate), as torch takes them; never a
bool, a string, or a complex number. Each helper returns the Python value, or ``None`` for
anything else, so that the caller's message names its own argument."""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import array_api_compat

__all__ = ["count", "flag", "integer", "real", "whole"]


def _zero_dim(value: Any, kinds: tuple[str, ...]) -> bool:
    """A 0-d array of a backend whose dtype is one of ``kinds`` (array API's names)."""
    if not array_api_compat.is_array_api_obj(value) or getattr(value, "ndim", None) != 0:
        return False
    try:
        return bool(array_api_compat.array_namespace(value).isdtype(value.dtype, kinds))
    except (TypeError, ValueError, AttributeError):
        return False


def integer(value: Any) -> int | None:
    """``value`` as an int if it is an integer (``np.int64(2)``, a 0-d integer array)."""
    if isinstance(value, bool) or not (
        isinstance(value, numbers.Integral) or _zero_dim(value, ("integral",))
    ):
        return None
    return operator.index(value)


def real(value: Any) -> float | None:
    """``value`` as a float if it is a real number (``np.float32(0.1)``, a 0-d real array);
    NaN and infinity included, for the caller to bound."""
    if isinstance(value, bool) or not (
        isinstance(value, numbers.Real) or _zero_dim(value, ("integral", "real floating"))
    ):
        return None
    return float(value)


def whole(value: Any) -> int | None:
    """``value`` as an int if it is a whole number, integer or float (a step count that
    torch keeps as a float tensor); ``None`` for 2.7, NaN or infinity."""
    exact = integer(value)
    if exact is not None:
        return exact
    number = real(value)
    if number is None or not math.isfinite(number) or not number.is_integer():
        return None
    return int(number)


def count(name: str, value: Any, low: int = 1) -> int:
    """``value`` as an int >= ``low`` (1 or 0), or ``ValueError`` naming ``name``."""
    number = integer(value)
    if number is None or number < low:
        kind = "a positive int" if low == 1 else "a non-negative int"
        raise ValueError(f"{name}: expected {kind}, got {value!r}")
    return number


def flag(value: Any) -> bool | None:
    """``value`` as a bool if it is one (NumPy's too, or an integer 0 or 1); else ``None``:
    a string such as "no" is not False."""
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):
        return bool(value)
    return bool(value) if integer(value) in (0, 1) else None
