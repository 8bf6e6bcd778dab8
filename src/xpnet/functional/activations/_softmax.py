"""Softmax and log-softmax along one axis."""

from __future__ import annotations

from typing import Any

from ..._numbers import integer
from .._autodiff import Pullback, defvjp, primitive
from ._common import float_input

__all__ = ["log_softmax", "log_softmax_last", "softmax"]


# ------------------------------------------------------------------ softmax family


def _check_dim(dim: Any, ndim: int) -> int:
    """Normalise a possibly negative ``dim``; a 0-d array accepts -1 and 0, as in torch."""
    index = integer(dim)
    if index is None:
        raise TypeError(f"dim: expected an int, got {type(dim).__name__} ({dim!r})")
    size = max(ndim, 1)
    if not -size <= index < size:
        raise ValueError(
            f"dim: expected an int in [{-size}, {size - 1}] for a {ndim}-D input, got {index}"
        )
    return index % size


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
    xp = float_input(input)
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
