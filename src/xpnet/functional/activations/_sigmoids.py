"""Sigmoid-shaped functions and the gates built from them: sigmoid, tanh, hardsigmoid,
hardswish, silu, softplus and mish."""

from __future__ import annotations

import numbers
from typing import Any

from .._autodiff import Pullback, defvjp, primitive
from ._common import float_input, no_inplace

__all__ = ["hardsigmoid", "hardswish", "mish", "sigmoid", "silu", "softplus", "tanh"]


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


# ------------------------------------------------------------ hardsigmoid, hardswish


@primitive
def hardsigmoid(input: Any, inplace: bool = False) -> Any:
    """``relu6(input + 3) / 6``: 0 below -3, 1 above 3, linear between.

    Parameters
    ----------
    input : array
        Floating point, any shape.
    inplace : bool, default False
        A hint, ignored (see :func:`relu`).

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``. The pullback is the gradient
        over 6 strictly inside (-3, 3) and 0 outside and at the bounds (torch's rule; torch
        scales by a float32 1/6 even in float64, xpnet by the exact one).
    """
    xp = float_input(input)
    no_inplace(inplace)
    return xp.clip(input + 3.0, min=0.0, max=6.0) / 6.0


@defvjp(hardsigmoid, "input")
def _hardsigmoid_vjp(input: Any, inplace: bool = False) -> tuple[Any, Pullback]:
    xp = float_input(input)
    inside = (input > -3.0) & (input < 3.0)

    def pullback(dy: Any) -> tuple[Any]:
        return (xp.where(inside, dy / 6.0, 0.0),)

    return hardsigmoid(input), pullback


@primitive
def hardswish(input: Any, inplace: bool = False) -> Any:
    """``input * relu6(input + 3) / 6`` (MobileNetV3's cheap swish).

    Parameters
    ----------
    input : array
        Floating point, any shape.
    inplace : bool, default False
        A hint, ignored (see :func:`relu`).

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``. The pullback follows torch:
        ``dy * (input / 3 + 1/2)`` strictly inside (-3, 3), ``dy`` from 3 up, 0 from -3
        down.
    """
    xp = float_input(input)
    no_inplace(inplace)
    return input * xp.clip(input + 3.0, min=0.0, max=6.0) / 6.0


@defvjp(hardswish, "input")
def _hardswish_vjp(input: Any, inplace: bool = False) -> tuple[Any, Pullback]:
    xp = float_input(input)

    def pullback(dy: Any) -> tuple[Any]:
        middle = xp.where(input < 3.0, dy * (input / 3.0 + 0.5), dy)
        return (xp.where(input <= -3.0, 0.0, middle),)

    return hardswish(input), pullback


# ------------------------------------------------------------- silu, softplus, mish


@primitive
def silu(input: Any, inplace: bool = False) -> Any:
    """Sigmoid linear unit (swish): ``input * sigmoid(input)``.

    Parameters
    ----------
    input : array
        Floating point, any shape.
    inplace : bool, default False
        A hint, ignored (see :func:`relu`).

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``; no overflow for huge inputs.
    """
    xp = float_input(input)
    no_inplace(inplace)
    return input * _sigmoid_parts(xp, input)[0]


@defvjp(silu, "input")
def _silu_vjp(input: Any, inplace: bool = False) -> tuple[Any, Pullback]:
    xp = float_input(input)
    s = _sigmoid_parts(xp, input)[0]

    def pullback(dy: Any) -> tuple[Any]:
        # d/dx x s(x) = s + x s (1 - s) = s (1 + x (1 - s)).
        return (dy * (s * (1.0 + input * (1.0 - s))),)

    return input * s, pullback


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} ({value!r})")
    return float(value)


def _softplus_parts(xp: Any, x: Any, beta: float, threshold: float) -> tuple[Any, Any]:
    """``(softplus(x), the mask where it is linear)``, as torch computes it: ``x`` where
    ``beta * x > threshold``, else ``log1p(exp(beta * x)) / beta`` (``exp`` only of values
    up to the threshold, so nothing overflows)."""
    scaled = x * beta
    linear = scaled > threshold
    curved = xp.log1p(xp.exp(xp.minimum(scaled, threshold))) / beta
    return xp.where(linear, x, curved), linear


@primitive
def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    """``log(1 + exp(beta * input)) / beta``, and ``input`` itself where
    ``beta * input > threshold`` (torch's switch to the linear function).

    Parameters
    ----------
    input : array
        Floating point, any shape.
    beta : float, default 1.0
        Sharpness (non-zero).
    threshold : float, default 20.0
        Above ``beta * input > threshold`` the function is ``input``.

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``. The pullback is the gradient
        times ``sigmoid(beta * input)``, and times 1 on the linear side.
    """
    xp = float_input(input)
    beta = _check_real("beta", beta)
    if beta == 0:
        raise ValueError("beta: expected a non-zero number, got 0")
    return _softplus_parts(xp, input, beta, _check_real("threshold", threshold))[0]


@defvjp(softplus, "input")
def _softplus_vjp(input: Any, beta: float = 1.0, threshold: float = 20.0) -> tuple[Any, Pullback]:
    xp = float_input(input)
    y = softplus(input, beta, threshold)
    linear = input * float(beta) > float(threshold)
    slope = _sigmoid_parts(xp, input * float(beta))[0]

    def pullback(dy: Any) -> tuple[Any]:
        return (xp.where(linear, dy, dy * slope),)

    return y, pullback


@primitive
def mish(input: Any, inplace: bool = False) -> Any:
    """``input * tanh(softplus(input))`` (Misra 2019), with torch's softplus.

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
    return input * xp.tanh(_softplus_parts(xp, input, 1.0, 20.0)[0])


@defvjp(mish, "input")
def _mish_vjp(input: Any, inplace: bool = False) -> tuple[Any, Pullback]:
    xp = float_input(input)
    t = xp.tanh(_softplus_parts(xp, input, 1.0, 20.0)[0])
    s = _sigmoid_parts(xp, input)[0]

    def pullback(dy: Any) -> tuple[Any]:
        # d/dx x tanh(sp(x)) = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2).
        return (dy * (t + input * s * (1.0 - t * t)),)

    return input * t, pullback
