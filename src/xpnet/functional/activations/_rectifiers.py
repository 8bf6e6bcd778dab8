"""Rectifiers: relu, leaky_relu, relu6, elu, selu and prelu."""

from __future__ import annotations

import numbers
from typing import Any

from .._autodiff import Pullback, defvjp, primitive
from .._select import keep_where
from .._validation import check_same_dtype, namespace_of
from ._common import float_input, no_inplace
from ._native import native_relu_pullback

__all__ = ["elu", "leaky_relu", "prelu", "relu", "relu6", "selu"]


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
        return (_pass_where_positive(xp, y, dy),)

    return y, pullback


def _pass_where_positive(xp: Any, y: Any, dy: Any) -> Any:
    """``where(y <= 0, 0, dy)`` for ``y = relu(x)``: torch's rule, zero where the output is
    0 (``<= 0``); a NaN output is not (``y != 0``), and passes ``dy``."""
    native = native_relu_pullback(xp, y, dy)
    return keep_where(xp, y != 0, dy) if native is None else native


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


# ----------------------------------------------------------------------------- relu6


@primitive
def relu6(input: Any, inplace: bool = False) -> Any:
    """``min(max(input, 0), 6)`` elementwise (torch's ``hardtanh(input, 0, 6)``).

    Parameters
    ----------
    input : array
        Floating point, any shape.
    inplace : bool, default False
        A hint, ignored (see :func:`relu`).

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``. The pullback passes the
        gradient strictly inside (0, 6) and gives 0 at both bounds, as torch's does.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> xpnet.to_numpy(F.relu6(xpnet.asarray([-1.0, 3.0, 9.0]))).tolist()
    [0.0, 3.0, 6.0]
    """
    xp = float_input(input)
    no_inplace(inplace)
    return xp.clip(input, min=0.0, max=6.0)


@defvjp(relu6, "input")
def _relu6_vjp(input: Any, inplace: bool = False) -> tuple[Any, Pullback]:
    xp = float_input(input)
    inside = (input > 0) & (input < 6)

    def pullback(dy: Any) -> tuple[Any]:
        return (xp.where(inside, dy, 0.0),)

    return relu6(input, inplace), pullback


# ------------------------------------------------------------------------ elu and selu

# SELU's constants (Klambauer et al. 2017), as torch writes them.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha: expected a real number, got {type(alpha).__name__} ({alpha!r})")
    return float(alpha)


def _elu_parts(xp: Any, x: Any, alpha: float, scale: float) -> tuple[Any, Any]:
    """``(scale * elu(x), scale * alpha * exp(x) where x <= 0)``; ``exp`` only of values
    <= 0, so nothing overflows."""
    grow = scale * alpha * xp.exp(xp.minimum(x, 0.0))
    negative = scale * alpha * xp.expm1(xp.minimum(x, 0.0))
    return xp.where(x > 0, scale * x, negative), grow


@primitive
def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Any:
    """Exponential linear unit: ``input`` where ``input > 0``, else
    ``alpha * (exp(input) - 1)``.

    Parameters
    ----------
    input : array
        Floating point, any shape.
    alpha : float, default 1.0
        The value the negative side tends to is ``-alpha``.
    inplace : bool, default False
        A hint, ignored (see :func:`relu`).

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``. The pullback is the gradient
        times 1 where ``input > 0`` and ``alpha * exp(input)`` elsewhere (at 0 too, as
        torch).

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> [round(v, 4) for v in xpnet.to_numpy(F.elu(xpnet.asarray([-1.0, 2.0]))).tolist()]
    [-0.6321, 2.0]
    """
    xp = float_input(input)
    no_inplace(inplace)
    return _elu_parts(xp, input, _check_alpha(alpha), 1.0)[0]


@defvjp(elu, "input")
def _elu_vjp(input: Any, alpha: float = 1.0, inplace: bool = False) -> tuple[Any, Pullback]:
    xp = float_input(input)
    no_inplace(inplace)
    y, grow = _elu_parts(xp, input, _check_alpha(alpha), 1.0)

    def pullback(dy: Any) -> tuple[Any]:
        return (xp.where(input > 0, dy, dy * grow),)

    return y, pullback


@primitive
def selu(input: Any, inplace: bool = False) -> Any:
    """Scaled ELU: ``scale * elu(input, alpha)`` with the self-normalising constants
    ``alpha = 1.6733`` and ``scale = 1.0507`` (torch's, to full precision).

    Parameters
    ----------
    input : array
        Floating point, any shape.
    inplace : bool, default False
        A hint, ignored (see :func:`relu`).

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``.
    """
    xp = float_input(input)
    no_inplace(inplace)
    return _elu_parts(xp, input, SELU_ALPHA, SELU_SCALE)[0]


@defvjp(selu, "input")
def _selu_vjp(input: Any, inplace: bool = False) -> tuple[Any, Pullback]:
    xp = float_input(input)
    y, grow = _elu_parts(xp, input, SELU_ALPHA, SELU_SCALE)

    def pullback(dy: Any) -> tuple[Any]:
        return (xp.where(input > 0, dy * SELU_SCALE, dy * grow),)

    return y, pullback


# ----------------------------------------------------------------------------- prelu


def _prelu_weight(xp: Any, input: Any, weight: Any) -> Any:
    """``weight`` shaped to broadcast along the channel axis (axis 1; an input of fewer
    than two axes has one channel, as in torch), after torch's checks."""
    namespace_of(input=input, weight=weight)  # one library, one device
    check_same_dtype("weight", weight, "input", input)
    if weight.ndim != 1:
        raise ValueError(f"weight: expected a 1-D array, got shape {tuple(weight.shape)}")
    count = int(weight.shape[0])
    if count == 1:
        return xp.reshape(weight, ())
    channels = int(input.shape[1]) if input.ndim >= 2 else 1
    if count != channels:
        raise ValueError(
            f"weight: {count} parameters, but the input (shape {tuple(input.shape)}) has "
            f"{channels} channel(s) (axis 1); give 1 parameter or one per channel"
        )
    return xp.reshape(weight, (1, count) + (1,) * (input.ndim - 2))


@primitive
def prelu(input: Any, weight: Any) -> Any:
    """Parametric ReLU: ``input`` where ``input > 0``, else ``weight * input``, with a
    learnable slope per channel (or one for all).

    Parameters
    ----------
    input : array
        Floating point; the channel axis is 1 (an input of fewer than two axes has one).
    weight : array
        ``(1,)`` or ``(channels,)``, ``input``'s dtype.

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``. The pullback gives ``input``
        the gradient times 1 where ``input > 0`` and times ``weight`` elsewhere (at 0 too),
        and ``weight`` the sum of ``dy * input`` over the non-positive inputs of its
        channel.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[-2.0, 3.0], [-1.0, -4.0]], dtype="float64")
    >>> xpnet.to_numpy(F.prelu(x, xpnet.asarray([0.5, 0.1], dtype="float64"))).tolist()
    [[-1.0, 3.0], [-0.5, -0.4]]
    """
    xp = float_input(input)
    slope = _prelu_weight(xp, input, weight)
    return xp.where(input > 0, input, input * slope)


@defvjp(prelu, "input", "weight")
def _prelu_vjp(input: Any, weight: Any) -> tuple[Any, Pullback]:
    xp = float_input(input)
    slope = _prelu_weight(xp, input, weight)
    positive = input > 0
    y = xp.where(positive, input, input * slope)

    def pullback(dy: Any) -> tuple[Any, Any]:
        dx = xp.where(positive, dy, dy * slope)
        contribution = xp.where(positive, 0.0, dy * input)
        if int(weight.shape[0]) == 1:
            dweight = xp.reshape(xp.sum(contribution), (1,))
        else:
            dweight = xp.sum(contribution, axis=(0, *range(2, input.ndim)))
        return dx, dweight

    return y, pullback
