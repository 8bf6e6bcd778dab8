"""Rectifiers: relu and leaky_relu."""

from __future__ import annotations

import numbers
from typing import Any

from .._autodiff import Pullback, defvjp, primitive
from ._common import float_input, no_inplace

__all__ = ["leaky_relu", "relu"]


# ----------------------------------------------------------------------------- relu


@primitive
def relu(input: Any, inplace: bool = False) -> Any:
    """Rectified linear unit, ``max(input, 0)`` elementwise (NaN stays NaN).

    Parameters
    ----------
    input : array
        Floating point, any shape.
    inplace : bool, default False
        Accepted for torch compatibility and ignored: xpnet never writes into arrays, so
        the result is always a new array (use it), as ``nn.ReLU(inplace=True)`` does.

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``. The pullback gives 0 where
        the output is ``<= 0`` (including at 0) and passes the gradient elsewhere, so at a
        NaN it passes the gradient on: torch's rule.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> xpnet.to_numpy(F.relu(xpnet.asarray([-1.5, 0.0, 2.0]))).tolist()
    [0.0, 0.0, 2.0]
    """
    xp = float_input(input)
    no_inplace(inplace)
    return xp.maximum(input, 0.0)


@defvjp(relu, "input")
def _relu_vjp(input: Any, inplace: bool = False) -> tuple[Any, Pullback]:
    xp = float_input(input)
    y = relu(input, inplace)

    def pullback(dy: Any) -> tuple[Any]:
        # torch's rule: zero where the output is <= 0; a NaN output is not, and passes dy.
        return (xp.where(y <= 0, 0.0, dy),)

    return y, pullback


# ----------------------------------------------------------------------- leaky_relu


def _check_slope(negative_slope: Any) -> float:
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
        raise TypeError(
            f"negative_slope: expected a real number, got {type(negative_slope).__name__} "
            f"({negative_slope!r})"
        )
    return float(negative_slope)


@primitive
def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Any:
    """Leaky ReLU: ``input`` where ``input > 0``, else ``negative_slope * input``.

    Parameters
    ----------
    input : array
        Floating point, any shape.
    negative_slope : float, default 0.01
        Slope for non-positive inputs (any real number, as in torch).
    inplace : bool, default False
        Accepted for torch compatibility and ignored, as for :func:`relu`.

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``. The pullback is the
        gradient times 1 where ``input > 0`` and times ``negative_slope`` elsewhere,
        including at exactly 0 (as torch).

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> xpnet.to_numpy(F.leaky_relu(xpnet.asarray([-2.0, 3.0]), 0.25)).tolist()
    [-0.5, 3.0]
    """
    xp = float_input(input)
    slope = _check_slope(negative_slope)
    no_inplace(inplace)
    return xp.where(input > 0, input, input * slope)


@defvjp(leaky_relu, "input")
def _leaky_relu_vjp(
    input: Any, negative_slope: float = 0.01, inplace: bool = False
) -> tuple[Any, Pullback]:
    xp = float_input(input)
    y = leaky_relu(input, negative_slope, inplace)
    slope = float(negative_slope)
    positive = input > 0

    def pullback(dy: Any) -> tuple[Any]:
        return (xp.where(positive, dy, dy * slope),)

    return y, pullback
