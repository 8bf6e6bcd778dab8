"""What the activations share: the input check, and ``inplace`` as a hint."""

from __future__ import annotations

from typing import Any

from .._validation import check_float, namespace_of

__all__ = ["float_input", "no_inplace"]


def float_input(input: Any) -> Any:
    """The namespace of ``input``, which must be a floating-point array."""
    xp = namespace_of(input=input)
    check_float(xp, "input", input)
    return xp


def no_inplace(inplace: Any) -> None:
    """``inplace`` is a hint xpnet ignores: it never writes into arrays (some backends'
    arrays are immutable), and the result holds what torch's in-place call would leave in
    its input."""
