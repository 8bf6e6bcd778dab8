"""Binary cross-entropy on logits."""

from __future__ import annotations

from typing import Any

from .._autodiff import Pullback, defvjp, primitive
from .._reductions import as_dtype_of, expand_cotangent, reduce, sum_to_shape
from .._validation import check_same_dtype
from ._regression import check_pair

__all__ = ["binary_cross_entropy_with_logits"]


def _check_broadcasts_to(name: str, x: Any, shape: tuple[int, ...]) -> None:
    own = tuple(x.shape)
    fits = len(own) <= len(shape) and all(
        a in (1, b) for a, b in zip(own[::-1], shape[::-1], strict=False)
    )
    if not fits:
        raise ValueError(
            f"{name}: expected a shape that broadcasts to the input's {shape}, got {own}"
        )


def _check_bce(input: Any, target: Any, weight: Any, reduction: Any, pos_weight: Any) -> Any:
    xp = check_pair(input, target, reduction, weight=weight, pos_weight=pos_weight)
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None:
            check_same_dtype(name, value, "input", input)
            _check_broadcasts_to(name, value, tuple(input.shape))
    return xp


def _log_sigmoid(xp: Any, x: Any, e: Any) -> Any:
    """``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, given ``e = exp(-|x|)``."""
    return xp.minimum(x, xp.zeros_like(x)) - xp.log1p(e)


def _bce_elements(
    xp: Any, x: Any, t: Any, weight: Any, pos_weight: Any
) -> tuple[Any, Any, Any, Any]:
    """Element-wise loss, unweighted loss, log-sigmoid and ``exp(-|x|)``."""
    e = xp.exp(-xp.abs(x))
    log_sig = _log_sigmoid(xp, x, e)
    # torch: (1 - t) x - (1 + (pos_weight - 1) t) log_sigmoid(x), then times weight.
    scale = log_sig if pos_weight is None else ((pos_weight - 1.0) * t + 1.0) * log_sig
    unweighted = (1.0 - t) * x - scale
    loss = unweighted if weight is None else unweighted * weight
    return loss, unweighted, log_sig, e


@primitive
def binary_cross_entropy_with_logits(
    input: Any,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Any:
    """Binary cross-entropy between ``sigmoid(input)`` and ``target``, computed stably.

    ``loss = -weight * (pos_weight * t * log sigmoid(x) + (1 - t) * log(1 - sigmoid(x)))``,
    evaluated as torch does with ``log sigmoid(x) = min(x, 0) - log1p(exp(-|x|))``, so
    logits in the thousands give finite losses and gradients.

    Parameters
    ----------
    input : array
        Logits, any shape, floating point.
    target : array
        Same shape and dtype as ``input``; usually in ``[0, 1]`` (differentiable).
    weight : array, optional
        Rescales each element; broadcast to ``input``'s shape; same dtype.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    pos_weight : array, optional
        Weight of the positive term, broadcast to ``input``'s shape (typically ``(C,)``
        against ``(N, C)``); same dtype.

    Returns
    -------
    array
        A scalar, or ``input``'s shape for ``'none'``.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([0.0, 3000.0, -3000.0], dtype="float64")
    >>> t = xpnet.asarray([1.0, 1.0, 1.0], dtype="float64")
    >>> [round(v, 4) for v in xpnet.to_numpy(
    ...     F.binary_cross_entropy_with_logits(x, t, reduction="none")).tolist()]
    [0.6931, 0.0, 3000.0]
    """
    xp = _check_bce(input, target, weight, reduction, pos_weight)
    loss = _bce_elements(xp, input, target, weight, pos_weight)[0]
    return as_dtype_of(xp, reduce(xp, loss, reduction), input)


@defvjp(binary_cross_entropy_with_logits, "input", "target", "weight", "pos_weight")
def _bce_with_logits_vjp(
    input: Any,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> tuple[Any, Pullback]:
    xp = _check_bce(input, target, weight, reduction, pos_weight)
    loss, unweighted, log_sig, e = _bce_elements(xp, input, target, weight, pos_weight)

    def pullback(cotangent: Any) -> tuple[Any, Any, Any, Any]:
        g = expand_cotangent(xp, cotangent, tuple(loss.shape), reduction)
        gw = g if weight is None else g * weight
        # sigmoid(-x) from e = exp(-|x|), stable both ways.
        sig_neg = xp.where(input >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
        if pos_weight is None:
            dinput = gw * ((1.0 - target) - sig_neg)
            dtarget = gw * (-input)
            dpos = None
        else:
            lw = (pos_weight - 1.0) * target + 1.0
            dinput = gw * ((1.0 - target) - lw * sig_neg)
            dtarget = gw * (-input - (pos_weight - 1.0) * log_sig)
            dpos = sum_to_shape(xp, gw * (-target * log_sig), tuple(pos_weight.shape))
        dweight = None if weight is None else sum_to_shape(xp, g * unweighted, tuple(weight.shape))
        return dinput, dtarget, dweight, dpos

    return as_dtype_of(xp, reduce(xp, loss, reduction), input), pullback
