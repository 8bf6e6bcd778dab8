"""Activations (relu, leaky_relu, sigmoid, tanh, gelu) and softmax / log_softmax.

All of them take floating-point input only: an integer array raises ``TypeError`` naming
``input`` (torch allows ``relu`` on integers, but a gradient of an integer array means
nothing, and xpnet's ops are for training). Every op keeps the input's namespace, device and
dtype, and has a hand-written pullback that follows torch's backward formulas, including
the gradient at exactly zero (``relu``: 0, ``leaky_relu``: ``negative_slope``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from ._autodiff import Pullback, defvjp, primitive
from ._special import erfc
from ._validation import check_float, namespace_of

__all__ = ["gelu", "leaky_relu", "log_softmax", "relu", "sigmoid", "softmax", "tanh"]

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_BETA = math.sqrt(2.0 / math.pi)
_TANH_KAPPA = 0.044715
# Beyond these |x| the gelu terms are saturated (exp(-x**2 / 2) is 0, tanh is +-1) in both
# float32 and float64; clamping there keeps x**2 and x**3 from overflowing.
_GELU_EXACT_CLAMP = 40.0
_GELU_TANH_CLAMP = 100.0


def _float_input(input: Any) -> Any:
    xp = namespace_of(input=input)
    check_float(xp, "input", input)
    return xp


def _no_inplace(inplace: Any) -> None:
    """``inplace`` is a hint xpnet ignores: it never writes into arrays (some backends'
    arrays are immutable), and the result holds what torch's in-place call would leave in
    its input."""


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
    xp = _float_input(input)
    _no_inplace(inplace)
    return xp.maximum(input, 0.0)


@defvjp(relu, "input")
def _relu_vjp(input: Any, inplace: bool = False) -> tuple[Any, Pullback]:
    xp = _float_input(input)
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
    xp = _float_input(input)
    slope = _check_slope(negative_slope)
    _no_inplace(inplace)
    return xp.where(input > 0, input, input * slope)


@defvjp(leaky_relu, "input")
def _leaky_relu_vjp(
    input: Any, negative_slope: float = 0.01, inplace: bool = False
) -> tuple[Any, Pullback]:
    xp = _float_input(input)
    y = leaky_relu(input, negative_slope, inplace)
    slope = float(negative_slope)
    positive = input > 0

    def pullback(dy: Any) -> tuple[Any]:
        return (xp.where(positive, dy, dy * slope),)

    return y, pullback


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
    xp = _float_input(input)
    return _sigmoid_parts(xp, input)[0]


@defvjp(sigmoid, "input")
def _sigmoid_vjp(input: Any) -> tuple[Any, Pullback]:
    xp = _float_input(input)
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
    xp = _float_input(input)
    return xp.tanh(input)


@defvjp(tanh, "input")
def _tanh_vjp(input: Any) -> tuple[Any, Pullback]:
    xp = _float_input(input)
    y = xp.tanh(input)

    def pullback(dy: Any) -> tuple[Any]:
        return (dy * (1.0 - y * y),)

    return y, pullback


# ----------------------------------------------------------------------------- gelu


def _check_approximate(approximate: Any) -> str:
    if not isinstance(approximate, str) or approximate not in ("none", "tanh"):
        raise ValueError(f"approximate: expected 'none' or 'tanh', got {approximate!r}")
    return approximate


def _gelu_cdf(xp: Any, x: Any) -> Any:
    """``Phi(x) = erfc(-x / sqrt 2) / 2``.

    Unlike torch's ``(1 + erf(x / sqrt 2)) / 2`` it keeps its relative accuracy for negative
    ``x``; it is exactly 0 below about -38.5 (float64).
    """
    return 0.5 * erfc(xp, -_SQRT_HALF * x)


def _gelu_tanh_inner(xp: Any, x: Any) -> tuple[Any, Any]:
    """``(clamped x, tanh(sqrt(2/pi) (x + 0.044715 x**3)))``."""
    xc = xp.clip(x, min=-_GELU_TANH_CLAMP, max=_GELU_TANH_CLAMP)
    return xc, xp.tanh(_TANH_BETA * (xc + _TANH_KAPPA * (xc * xc * xc)))


def _gelu_forward(xp: Any, x: Any, approximate: str) -> tuple[Any, Any]:
    """``(gelu(x), what the pullback reuses)``: ``Phi(x)`` or ``(clamped x, tanh)``.

    Where ``Phi`` (or ``1 + tanh``) is exactly 0, ``x`` is replaced by the clamp, so that
    ``gelu(-inf)`` is 0 (its limit) instead of ``-inf * 0 = nan``.
    """
    if approximate == "tanh":
        xc, t = _gelu_tanh_inner(xp, x)
        return 0.5 * xp.clip(x, min=-_GELU_TANH_CLAMP) * (1.0 + t), (xc, t)
    cdf = _gelu_cdf(xp, x)
    return xp.clip(x, min=-_GELU_EXACT_CLAMP) * cdf, cdf


@primitive
def gelu(input: Any, approximate: str = "none") -> Any:
    """Gaussian error linear unit, ``input * Phi(input)`` with ``Phi`` the normal CDF.

    Parameters
    ----------
    input : array
        Floating point, any shape.
    approximate : {'none', 'tanh'}, default 'none'
        ``'none'``: the exact ``x / 2 * (1 + erf(x / sqrt 2))``, evaluated as
        ``x / 2 * erfc(-x / sqrt 2)`` with Cody's rational approximations (float64
        round-off accurate, also in the left tail). ``'tanh'``: torch's approximation
        ``x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x**3)))``.

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``. ``gelu(-inf)`` is 0 (its
        limit; torch gives NaN there).

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> y = F.gelu(xpnet.asarray([-1.0, 0.0, 1.0]))
    >>> [round(v, 6) for v in xpnet.to_numpy(y).tolist()]
    [-0.158655, 0.0, 0.841345]
    """
    xp = _float_input(input)
    return _gelu_forward(xp, input, _check_approximate(approximate))[0]


@defvjp(gelu, "input")
def _gelu_vjp(input: Any, approximate: str = "none") -> tuple[Any, Pullback]:
    xp = _float_input(input)
    y, saved = _gelu_forward(xp, input, _check_approximate(approximate))
    if approximate == "tanh":
        xc, t = saved
        # d/dx [x/2 (1 + t)] = (1 + t) / 2 + x/2 (1 - t**2) beta (1 + 3 kappa x**2), torch's
        # form; the second term vanishes where t saturates, so the clamped x is exact there.
        slope = 0.5 * (1.0 + t) + 0.5 * xc * (1.0 - t * t) * _TANH_BETA * (
            1.0 + 3.0 * _TANH_KAPPA * (xc * xc)
        )
    else:
        xc = xp.clip(input, min=-_GELU_EXACT_CLAMP, max=_GELU_EXACT_CLAMP)
        # Phi(x) + x phi(x); phi(x) underflows to 0 beyond the clamp, so x phi(x) does too.
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * (xc * xc))
        slope = saved + xc * pdf

    def pullback(dy: Any) -> tuple[Any]:
        return (dy * slope,)

    return y, pullback


# ------------------------------------------------------------------ softmax family


def _check_dim(dim: Any, ndim: int) -> int:
    """Normalise a possibly negative ``dim``; a 0-d array accepts -1 and 0, as in torch."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim: expected an int, got {type(dim).__name__} ({dim!r})")
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise ValueError(
            f"dim: expected an int in [{-size}, {size - 1}] for a {ndim}-D input, got {dim}"
        )
    return dim % size


def _cast(xp: Any, input: Any, dtype: Any) -> Any:
    """Apply softmax's ``dtype`` argument: cast the input first (explicit, so allowed)."""
    if dtype is None:
        return input
    try:
        floating = bool(xp.isdtype(dtype, "real floating"))
    except (TypeError, ValueError, AttributeError):
        floating = False
    if not floating:
        raise TypeError(
            f"dtype: expected None or a real floating dtype of {xp.__name__}, got {dtype!r}"
        )
    return xp.astype(input, dtype)


def _softmax_setup(input: Any, dim: Any, dtype: Any) -> tuple[Any, Any, int, bool]:
    """Checks, the dtype cast and 0-d handling: ``(xp, x, axis, was_0d)``."""
    xp = _float_input(input)
    axis = _check_dim(dim, input.ndim)
    x = _cast(xp, input, dtype)
    scalar = x.ndim == 0
    if scalar:
        x = xp.reshape(x, (1,))
    return xp, x, axis, scalar


def _shifted_and_sum(xp: Any, x: Any, axis: int) -> tuple[Any, Any]:
    """``(x - max(x), sum(exp(x - max(x))))`` along ``axis``: no overflow for huge logits."""
    if x.shape[axis] == 0:  # nothing to normalise; max over an empty axis is undefined
        return x, xp.ones_like(x)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted, xp.sum(xp.exp(shifted), axis=axis, keepdims=True)


def log_softmax_last(xp: Any, x: Any) -> Any:
    """Log-softmax along the last axis of ``x`` (what the class losses need): 6 passes."""
    shifted, total = _shifted_and_sum(xp, x, x.ndim - 1)
    return shifted - xp.log(total)


@primitive
def softmax(input: Any, dim: int, dtype: Any = None) -> Any:
    """Softmax along ``dim``: ``exp(x_i) / sum_j exp(x_j)``, stable for huge logits.

    Parameters
    ----------
    input : array
        Floating point, any shape.
    dim : int
        The axis to normalise (negative counts from the end). Required: torch's implicit
        choice is deprecated.
    dtype : dtype, optional
        If given, ``input`` is cast to this floating dtype (of its own namespace) first;
        the output has this dtype and the pullback returns ``input``'s dtype.

    Returns
    -------
    array
        Non-negative values summing to 1 along ``dim``; same shape, namespace and device
        as ``input``.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> p = F.softmax(xpnet.asarray([[1000.0, 1000.0], [0.0, -3000.0]]), dim=1)
    >>> xpnet.to_numpy(p).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    """
    xp, x, axis, scalar = _softmax_setup(input, dim, dtype)
    shifted, total = _shifted_and_sum(xp, x, axis)
    y = xp.exp(shifted) / total
    return xp.reshape(y, ()) if scalar else y


@defvjp(softmax, "input")
def _softmax_vjp(input: Any, dim: int, dtype: Any = None) -> tuple[Any, Pullback]:
    xp, x, axis, scalar = _softmax_setup(input, dim, dtype)
    shifted, total = _shifted_and_sum(xp, x, axis)
    y = xp.exp(shifted) / total

    def pullback(dy: Any) -> tuple[Any]:
        g = xp.reshape(dy, (1,)) if scalar else dy
        dx = y * (g - xp.sum(g * y, axis=axis, keepdims=True))
        if scalar:
            dx = xp.reshape(dx, ())
        return (dx if dx.dtype == input.dtype else xp.astype(dx, input.dtype),)

    return (xp.reshape(y, ()) if scalar else y), pullback


@primitive
def log_softmax(input: Any, dim: int, dtype: Any = None) -> Any:
    """Logarithm of :func:`softmax` along ``dim``, computed as ``x - max - log(sum(exp))``.

    Parameters
    ----------
    input : array
        Floating point, any shape.
    dim : int
        The axis to normalise (negative counts from the end). Required.
    dtype : dtype, optional
        If given, ``input`` is cast to this floating dtype (of its own namespace) first.

    Returns
    -------
    array
        Same shape, namespace and device as ``input``; finite even for logits in the
        thousands.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> xpnet.to_numpy(F.log_softmax(xpnet.asarray([0.0, -3000.0]), dim=0)).tolist()
    [0.0, -3000.0]
    """
    xp, x, axis, scalar = _softmax_setup(input, dim, dtype)
    shifted, total = _shifted_and_sum(xp, x, axis)
    y = shifted - xp.log(total)
    return xp.reshape(y, ()) if scalar else y


@defvjp(log_softmax, "input")
def _log_softmax_vjp(input: Any, dim: int, dtype: Any = None) -> tuple[Any, Pullback]:
    xp, x, axis, scalar = _softmax_setup(input, dim, dtype)
    shifted, total = _shifted_and_sum(xp, x, axis)
    y = shifted - xp.log(total)

    def pullback(dy: Any) -> tuple[Any]:
        g = xp.reshape(dy, (1,)) if scalar else dy
        dx = g - xp.exp(y) * xp.sum(g, axis=axis, keepdims=True)
        if scalar:
            dx = xp.reshape(dx, ())
        return (dx if dx.dtype == input.dtype else xp.astype(dx, input.dtype),)

    return (xp.reshape(y, ()) if scalar else y), pullback
