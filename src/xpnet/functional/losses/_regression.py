"""Regression losses: mean squared error, mean absolute error, smooth L1 and Huber."""

from __future__ import annotations

import numbers
from typing import Any

from .._autodiff import Pullback, defvjp, primitive
from .._reductions import as_dtype_of, check_reduction, expand_cotangent, reduce
from .._validation import check_float, check_same_dtype, check_shape, namespace_of

__all__ = ["check_pair", "huber_loss", "l1_loss", "mse_loss", "smooth_l1_loss"]


def check_pair(input: Any, target: Any, reduction: Any, **others: Any) -> Any:
    """Namespace, float dtypes and equal shapes of ``input`` and ``target``."""
    xp = namespace_of(input=input, target=target, **others)
    check_float(xp, "input", input)
    check_same_dtype("target", target, "input", input)
    check_shape(
        "target",
        target,
        tuple(input.shape),
        "the input's; xpnet does not broadcast the target, torch warns and broadcasts",
    )
    check_reduction(reduction)
    return xp


@primitive
def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean squared error, ``(input - target) ** 2`` element-wise, then reduced.

    Parameters
    ----------
    input : array
        Any shape, floating point.
    target : array
        Same shape and dtype as ``input``. torch broadcasts a differently shaped target
        with a warning; xpnet raises ``ValueError`` instead, since that is nearly always a
        bug (e.g. ``(N, 1)`` against ``(N,)``).
    reduction : {'mean', 'sum', 'none'}, default 'mean'

    Returns
    -------
    array
        A scalar, or ``input``'s shape for ``'none'``.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> float(F.mse_loss(xpnet.asarray([1.0, 2.0]), xpnet.asarray([0.0, 4.0])))
    2.5
    """
    xp = check_pair(input, target, reduction)
    return as_dtype_of(xp, reduce(xp, (input - target) ** 2, reduction), input)


@defvjp(mse_loss, "input", "target")
def _mse_loss_vjp(input: Any, target: Any, reduction: str = "mean") -> tuple[Any, Pullback]:
    xp = check_pair(input, target, reduction)
    diff = input - target

    def pullback(cotangent: Any) -> tuple[Any, Any]:
        g = expand_cotangent(xp, cotangent, tuple(diff.shape), reduction)
        dinput = 2.0 * diff * g
        return dinput, -dinput

    return as_dtype_of(xp, reduce(xp, diff**2, reduction), input), pullback


def _check_positive(name: str, value: Any, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} ({value!r})")
    number = float(value)
    if not (number >= 0 if allow_zero else number > 0):  # NaN fails both
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name}: expected a {bound} number, got {value!r}")
    return number


@primitive
def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean absolute error, ``|input - target|`` element-wise, then reduced.

    Parameters
    ----------
    input : array
        Any shape, floating point.
    target : array
        Same shape and dtype as ``input`` (not broadcast, as :func:`mse_loss`).
    reduction : {'mean', 'sum', 'none'}, default 'mean'

    Returns
    -------
    array
        A scalar, or ``input``'s shape for ``'none'``. The pullback is the cotangent times
        ``sign(input - target)`` (0 where they are equal, as torch).

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> float(F.l1_loss(xpnet.asarray([1.0, 2.0]), xpnet.asarray([0.0, 4.0])))
    1.5
    """
    xp = check_pair(input, target, reduction)
    return as_dtype_of(xp, reduce(xp, xp.abs(input - target), reduction), input)


@defvjp(l1_loss, "input", "target")
def _l1_loss_vjp(input: Any, target: Any, reduction: str = "mean") -> tuple[Any, Pullback]:
    xp = check_pair(input, target, reduction)
    diff = input - target

    def pullback(cotangent: Any) -> tuple[Any, Any]:
        g = expand_cotangent(xp, cotangent, tuple(diff.shape), reduction)
        dinput = xp.sign(diff) * g
        return dinput, -dinput

    return as_dtype_of(xp, reduce(xp, xp.abs(diff), reduction), input), pullback


def _piecewise(xp: Any, diff: Any, width: float, outer_scale: float) -> tuple[Any, Any]:
    """Huber's shape around ``diff``: ``(elements, slope)`` with the quadratic
    ``0.5 d^2 / s`` inside ``|d| < width`` (``s`` = ``width / outer_scale``) and the line
    ``outer_scale * (|d| - width / 2)`` outside; ``slope`` is d(elements)/d(diff), clipped
    to ``[-outer_scale, outer_scale]`` as torch's backward does."""
    absolute = xp.abs(diff)
    inside = absolute < width
    quadratic = 0.5 * diff * diff * (outer_scale / width)
    linear = outer_scale * (absolute - 0.5 * width)
    slope = xp.clip(diff * (outer_scale / width), min=-outer_scale, max=outer_scale)
    return xp.where(inside, quadratic, linear), slope


@primitive
def smooth_l1_loss(input: Any, target: Any, reduction: str = "mean", beta: float = 1.0) -> Any:
    """Smooth L1: ``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - beta / 2``, with
    ``d = input - target``, then reduced (``beta = 0`` is :func:`l1_loss`).

    Parameters
    ----------
    input, target : array
        Same shape and floating dtype.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    beta : float, default 1.0
        Where the quadratic turns linear; non-negative.

    Returns
    -------
    array
        A scalar, or ``input``'s shape for ``'none'``.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> float(F.smooth_l1_loss(xpnet.asarray([0.5, 3.0]), xpnet.asarray([0.0, 0.0])))
    1.3125
    """
    xp = check_pair(input, target, reduction)
    beta = _check_positive("beta", beta, allow_zero=True)
    if beta == 0.0:
        return l1_loss(input, target, reduction)
    elements, _ = _piecewise(xp, input - target, beta, 1.0)
    return as_dtype_of(xp, reduce(xp, elements, reduction), input)


@defvjp(smooth_l1_loss, "input", "target")
def _smooth_l1_loss_vjp(
    input: Any, target: Any, reduction: str = "mean", beta: float = 1.0
) -> tuple[Any, Pullback]:
    xp = check_pair(input, target, reduction)
    beta = _check_positive("beta", beta, allow_zero=True)
    if beta == 0.0:
        return _l1_loss_vjp(input, target, reduction)
    elements, slope = _piecewise(xp, input - target, beta, 1.0)

    def pullback(cotangent: Any) -> tuple[Any, Any]:
        dinput = slope * expand_cotangent(xp, cotangent, tuple(slope.shape), reduction)
        return dinput, -dinput

    return as_dtype_of(xp, reduce(xp, elements, reduction), input), pullback


@primitive
def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Any:
    """Huber loss: ``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - delta / 2)``, with
    ``d = input - target``, then reduced (``delta`` times :func:`smooth_l1_loss` with
    ``beta = delta``).

    Parameters
    ----------
    input, target : array
        Same shape and floating dtype.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    delta : float, default 1.0
        Where the quadratic turns linear; positive.

    Returns
    -------
    array
        A scalar, or ``input``'s shape for ``'none'``.
    """
    xp = check_pair(input, target, reduction)
    delta = _check_positive("delta", delta, allow_zero=False)
    elements, _ = _piecewise(xp, input - target, delta, delta)
    return as_dtype_of(xp, reduce(xp, elements, reduction), input)


@defvjp(huber_loss, "input", "target")
def _huber_loss_vjp(
    input: Any, target: Any, reduction: str = "mean", delta: float = 1.0
) -> tuple[Any, Pullback]:
    xp = check_pair(input, target, reduction)
    delta = _check_positive("delta", delta, allow_zero=False)
    elements, slope = _piecewise(xp, input - target, delta, delta)

    def pullback(cotangent: Any) -> tuple[Any, Any]:
        dinput = slope * expand_cotangent(xp, cotangent, tuple(slope.shape), reduction)
        return dinput, -dinput

    return as_dtype_of(xp, reduce(xp, elements, reduction), input), pullback
