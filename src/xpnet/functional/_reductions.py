"""Helpers the losses share: the ``reduction`` argument, its adjoint and broadcasting
adjoints."""

from __future__ import annotations

import math
from typing import Any

from ._validation import constant

__all__ = [
    "REDUCTIONS",
    "as_dtype_of",
    "check_reduction",
    "expand_cotangent",
    "reduce",
    "sum_to_shape",
]

REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: Any) -> str:
    """Return ``reduction`` if it is 'none', 'mean' or 'sum'; raise ``ValueError`` otherwise."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected 'none', 'mean' or 'sum', got {reduction!r}")
    return reduction


def reduce(xp: Any, loss: Any, reduction: str) -> Any:
    """Apply ``reduction`` to an element-wise loss (mean over every element)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return xp.sum(loss)
    if loss.ndim == 0:
        return loss
    if math.prod(loss.shape) == 0:
        return constant(xp, math.nan, loss)  # torch's mean of nothing, without a warning
    return xp.mean(loss)


def as_dtype_of(xp: Any, loss: Any, input: Any) -> Any:
    """``loss`` in ``input``'s dtype. Under NumPy 1.x a 0-d array meeting a Python scalar
    promotes to float64 (value-based casting); the losses' results keep the input's dtype
    on every NumPy, as in torch. No operation where the dtypes already agree."""
    return loss if loss.dtype == input.dtype else xp.astype(loss, input.dtype)


def expand_cotangent(xp: Any, cotangent: Any, shape: tuple[int, ...], reduction: str) -> Any:
    """The adjoint of :func:`reduce`: the cotangent of each element of the unreduced loss."""
    if reduction == "none":
        return cotangent
    if reduction == "mean":
        cotangent = cotangent / max(math.prod(shape), 1)
    return xp.broadcast_to(cotangent, shape)


def sum_to_shape(xp: Any, g: Any, shape: tuple[int, ...]) -> Any:
    """The adjoint of broadcasting an array of ``shape`` to ``g.shape``: sum the copies."""
    extra = g.ndim - len(shape)
    if extra > 0:
        g = xp.sum(g, axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return g
