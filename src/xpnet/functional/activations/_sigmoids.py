"""Squashing functions: sigmoid and tanh."""

from __future__ import annotations

from typing import Any

from .._autodiff import Pullback, defvjp, primitive
from ._common import float_input

__all__ = ["sigmoid", "tanh"]


# -------------------------------------------------------------------------- sigmoid


def _sigmoid_parts(xp: Any, x: Any) -> tuple[Any, Any]:
    """``(sigmoid(x), exp(-|x|))``: only ``exp`` of non-positive values, so no overflow."""
    e = xp.exp(-xp.abs(x))
    one_plus = 1.0 + e
    return xp.where(x >= 0, 1.0 / one_plus, e / one_plus), e


@primitive
def sigmoid(input: Any) -> Any:
    """Logistic function ``1 / (1 + exp(-input))``, computed without overflow.

    Parameters
    ----------
    input : array
        Floating point, any shape.

    Returns
    -------
    array
        Values in [0, 1]; same shape, dtype, namespace and device as ``input``.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> xpnet.to_numpy(F.sigmoid(xpnet.asarray([-1000.0, 0.0, 1000.0]))).tolist()
    [0.0, 0.5, 1.0]
    """
    xp = float_input(input)
    return _sigmoid_parts(xp, input)[0]


@defvjp(sigmoid, "input")
def _sigmoid_vjp(input: Any) -> tuple[Any, Pullback]:
    xp = float_input(input)
    y, e = _sigmoid_parts(xp, input)
    # sigmoid' = y (1 - y) = e / (1 + e)**2 with e = exp(-|x|): symmetric, and accurate in
    # both tails (1 - y cancels for large positive x).
    one_plus = 1.0 + e
    slope = e / (one_plus * one_plus)

    def pullback(dy: Any) -> tuple[Any]:
        return (dy * slope,)

    return y, pullback


# ----------------------------------------------------------------------------- tanh


@primitive
def tanh(input: Any) -> Any:
    """Hyperbolic tangent, elementwise.

    Parameters
    ----------
    input : array
        Floating point, any shape.

    Returns
    -------
    array
        Values in [-1, 1]; same shape, dtype, namespace and device as ``input``.
    """
    xp = float_input(input)
    return xp.tanh(input)


@defvjp(tanh, "input")
def _tanh_vjp(input: Any) -> tuple[Any, Pullback]:
    xp = float_input(input)
    y = xp.tanh(input)

    def pullback(dy: Any) -> tuple[Any]:
        return (dy * (1.0 - y * y),)

    return y, pullback
