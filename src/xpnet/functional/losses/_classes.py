"""Class-index losses: cross-entropy and negative log-likelihood.

Class targets are picked with one-hot masks (``target[..., None] == arange(C)``), never with
integer-array indexing, which the standard barely supports. The class axis (axis 1, as in
torch) is moved last for the computation and moved back for the gradient.
"""

from __future__ import annotations

import math
from typing import Any

from ..._numbers import integer, real
from .._autodiff import Pullback, defvjp, primitive
from .._constants import cached_constant
from .._reductions import as_dtype_of, check_reduction, expand_cotangent, reduce
from .._validation import check_float, check_same_dtype, check_shape, namespace_of, reads_values
from ..activations import log_softmax_last
from ._native import native_cross_entropy

__all__ = ["cross_entropy", "nll_loss"]

_SHOWN_BAD_TARGETS = 5  # offending target values an error message lists


# ---------------------------------------------------------------------------------------
# Class-index losses (cross_entropy, nll_loss)
# ---------------------------------------------------------------------------------------


def _check_class_targets(
    input: Any, target: Any, weight: Any, ignore_index: Any, reduction: Any
) -> tuple[Any, int]:
    """Validate the arguments of nll_loss / cross_entropy; return ``(xp, classes)``."""
    xp = namespace_of(input=input, target=target, weight=weight)
    check_float(xp, "input", input)
    if not xp.isdtype(target.dtype, "integral"):
        hint = (
            "; class probabilities (floating-point targets) are not supported, pass the "
            "index of the true class"
            if xp.isdtype(target.dtype, "real floating")
            else ""
        )
        raise TypeError(f"target: expected integer class indices, got dtype {target.dtype}{hint}")
    if input.ndim == 0:
        raise ValueError("input: expected (C,), (N, C) or (N, C, d1, ...) scores, got a 0-D array")
    if input.ndim == 1:
        classes = int(input.shape[0])
        check_shape("target", target, (), "one class index for unbatched (C,) input")
    else:
        classes = int(input.shape[1])
        expected = (input.shape[0], *input.shape[2:])
        check_shape("target", target, expected, f"input has shape {tuple(input.shape)}")
    if weight is not None:
        check_same_dtype("weight", weight, "input", input)
        check_shape("weight", weight, (classes,), "one weight per class")
    if integer(ignore_index) is None:
        raise TypeError(f"ignore_index: expected an int, got {ignore_index!r}")
    check_reduction(reduction)
    if reads_values(target):
        _check_target_range(xp, target, classes, ignore_index)
    return xp, classes


def _check_target_range(xp: Any, target: Any, classes: int, ignore_index: int) -> None:
    bad = ((target < 0) | (target >= classes)) & (target != ignore_index)
    if not bool(xp.any(bad)):
        return
    # Error path only: pull the few smallest offending values to the host, one at a time.
    largest = xp.max(target)
    shown = []
    for _ in range(_SHOWN_BAD_TARGETS):
        if not bool(xp.any(bad)):
            break
        value = int(xp.min(xp.where(bad, target, largest)))
        shown.append(str(value))
        bad = bad & (target != value)
    more = ", ..." if bool(xp.any(bad)) else ""
    raise ValueError(
        f"target: expected class indices in [0, {classes}) or ignore_index={ignore_index}, "
        f"got {', '.join(shown)}{more}"
    )


def _classes_last(xp: Any, x: Any) -> Any:
    return xp.moveaxis(x, 1, -1) if x.ndim >= 2 else x


def _classes_back(xp: Any, x: Any) -> Any:
    return xp.moveaxis(x, -1, 1) if x.ndim >= 2 else x


def _one_hot(xp: Any, target: Any, classes: int) -> Any:
    """Boolean ``(..., C)`` mask, true at each element's target class (all false for a
    target outside ``[0, C)``)."""
    labels = cached_constant(
        target,
        ("class labels", classes, str(target.dtype)),
        lambda xp, device: xp.arange(classes, dtype=target.dtype, device=device),
    )
    return xp.expand_dims(target, axis=-1) == labels


class _ClassLoss:
    """The weighted negative log-likelihood of the target classes, shared by nll_loss and
    cross_entropy; ``logp`` holds log-probabilities with the classes on the last axis.

    Written for few passes over the ``(..., C)`` arrays: a step's loss and its pullback
    are about 26 array operations (launches, on a GPU) in the default case.
    """

    def __init__(
        self,
        xp: Any,
        logp: Any,
        target: Any,
        weight: Any,
        ignore_index: int,
        classes: int,
        reduction: str,
        label_smoothing: float = 0.0,
    ) -> None:
        self.xp = xp
        self.logp = logp
        self.reduction = reduction
        self.classes = classes
        self.label_smoothing = label_smoothing
        self.valid = target != ignore_index
        # True at each non-ignored element's target class. An ignore_index outside
        # [0, C) matches no class, so only one inside needs masking.
        self.onehot = _one_hot(xp, target, classes)
        if 0 <= ignore_index < classes:
            self.onehot = self.onehot & xp.expand_dims(self.valid, axis=-1)
        # Each element's class weight, 0 where the target is ignored (None: 1 or 0).
        self.class_weight = weight
        self.target_weight = (
            None if weight is None else xp.sum(xp.where(self.onehot, weight, 0.0), axis=-1)
        )
        # where, not masks times logp: log-probabilities may be -inf at classes that do
        # not count (torch gives those elements a loss of 0, not nan).
        picked = xp.sum(xp.where(self.onehot, logp, 0.0), axis=-1)
        loss = -picked if weight is None else -(self.target_weight * picked)
        if label_smoothing > 0.0:
            # torch: (1 - ls) * nll + ls / C * (-sum_c w_c logp_c), ignored elements zeroed.
            weighted = logp if weight is None else logp * weight
            smooth = -xp.sum(weighted, axis=-1)
            smooth = xp.where(self.valid, smooth, 0.0)
            loss = (1.0 - label_smoothing) * loss + (label_smoothing / classes) * smooth
        if not reads_values(target):
            # The target range went unchecked (a GPU, a trace): a target outside [0, C)
            # makes its loss NaN rather than silently 0.
            # (An ignored target matches no class, so "counted" is "hit == valid".)
            counted = xp.any(self.onehot, axis=-1) == self.valid
            loss = xp.where(counted, loss, math.nan)
        self.elements = loss
        # The weighted mean divides by the summed weight of the non-ignored targets; a
        # total of 0 (every target ignored) gives NaN, as in torch, without a warning.
        if reduction == "mean":
            total = (
                xp.sum(xp.astype(self.valid, logp.dtype))
                if weight is None
                else xp.sum(self.target_weight)
            )
            self.divisor = as_dtype_of(xp, xp.where(total == 0, math.nan, total), total)

    def reduced(self) -> Any:
        if self.reduction == "mean":
            return self.xp.sum(self.elements) / self.divisor
        return reduce(self.xp, self.elements, self.reduction)

    def element_cotangent(self, cotangent: Any) -> Any:
        """The cotangent of each element's loss, zero where the target is ignored."""
        xp = self.xp
        shape = tuple(self.elements.shape)
        if self.reduction == "mean":  # weighted mean: a sum divided by the total weight
            g = xp.broadcast_to(cotangent / self.divisor, shape)
        else:
            g = expand_cotangent(xp, cotangent, shape, self.reduction)
        return xp.where(self.valid, g, 0.0)

    def logits_cotangent(self, cotangent: Any) -> Any:
        """The pullback through log-softmax: ``loss = -sum_c q_c logp_c`` per element gives
        ``dloss/dlogit_k = p_k sum_c q_c - q_k`` (``(..., C)``)."""
        xp = self.xp
        g = xp.expand_dims(self.element_cotangent(cotangent), axis=-1)
        p = xp.exp(self.logp)
        if self.class_weight is None and self.label_smoothing == 0.0:
            # q is the one-hot target: sum_c q_c is 1 where g is not 0.
            return g * (p - xp.astype(self.onehot, p.dtype))
        q = self.target_distribution()
        return g * (p * xp.sum(q, axis=-1, keepdims=True) - q)

    def target_distribution(self) -> Any:
        """``q`` with ``loss = -sum_c q_c logp_c`` per element: the (smoothed, weighted)
        target; ``(..., C)``."""
        xp = self.xp
        if self.target_weight is None:
            q = xp.astype(self.onehot, self.logp.dtype)
        else:
            q = xp.where(self.onehot, xp.expand_dims(self.target_weight, axis=-1), 0.0)
        ls = self.label_smoothing
        if ls > 0.0:
            valid = xp.expand_dims(xp.astype(self.valid, q.dtype), axis=-1)
            spread = valid if self.class_weight is None else valid * self.class_weight
            q = (1.0 - ls) * q + (ls / self.classes) * spread
        return q


@primitive
def nll_loss(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Any:
    """Negative log-likelihood of the target classes, given log-probabilities.

    ``loss_i = -weight[t_i] * input[i, t_i]``, and 0 where ``t_i == ignore_index``.

    Parameters
    ----------
    input : array
        Log-probabilities ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``; floating
        point.
    target : array
        Integer class indices ``(N,)``, ``(N, d1, ...)`` or ``()``, each in ``[0, C)`` or
        equal to ``ignore_index``. Class probabilities are not supported (``TypeError``).
    weight : array, optional
        ``(C,)`` rescaling weight of each class, same dtype as ``input``.
    ignore_index : int, default -100
        Targets with this value contribute nothing, to the loss nor to the mean's divisor.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        ``'mean'`` divides the sum by the summed weight of the non-ignored targets (their
        count without ``weight``), as torch does; with every target ignored it is nan.

    Returns
    -------
    array
        A scalar, or the per-element losses (``target``'s shape) for ``'none'``.

    Raises
    ------
    ValueError
        If a target is out of range (the message names the offending values), shapes
        disagree, or ``reduction`` is unknown.
    TypeError
        If ``input`` is not floating point, ``target`` not integer, or ``weight``'s dtype
        differs from ``input``'s.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> logp = xpnet.asarray([[-0.5, -1.0, -2.0], [-3.0, -0.25, -1.5]], dtype="float64")
    >>> float(F.nll_loss(logp, xpnet.asarray([0, 1])))
    0.375
    """
    xp, classes = _check_class_targets(input, target, weight, ignore_index, reduction)
    loss = _ClassLoss(
        xp, _classes_last(xp, input), target, weight, ignore_index, classes, reduction
    )
    return as_dtype_of(xp, loss.reduced(), input)


@defvjp(nll_loss, "input")
def _nll_loss_vjp(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> tuple[Any, Pullback]:
    xp, classes = _check_class_targets(input, target, weight, ignore_index, reduction)
    logp = _classes_last(xp, input)
    loss = _ClassLoss(xp, logp, target, weight, ignore_index, classes, reduction)

    def pullback(cotangent: Any) -> tuple[Any]:
        g = loss.element_cotangent(cotangent)
        q = loss.target_distribution()
        return (_classes_back(xp, -(xp.expand_dims(g, axis=-1) * q)),)

    return as_dtype_of(xp, loss.reduced(), input), pullback


def _check_label_smoothing(label_smoothing: Any) -> float:
    if real(label_smoothing) is None:
        raise TypeError(f"label_smoothing: expected a float, got {label_smoothing!r}")
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(
            f"label_smoothing: expected a value in [0.0, 1.0], got {label_smoothing!r}"
        )
    return float(label_smoothing)


@primitive
def cross_entropy(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Any:
    """Cross-entropy between the softmax of ``input`` and the target classes.

    Equals ``nll_loss(log_softmax(input, 1), target, ...)``; the log-softmax is computed
    with a shifted log-sum-exp, so logits in the thousands are fine. With label smoothing
    the target becomes ``q_c = (1 - label_smoothing) [c == t] + label_smoothing / C`` and
    the loss ``-sum_c weight[c] q_c log p_c``, exactly torch's formula.

    Parameters
    ----------
    input : array
        Unnormalised scores (logits) ``(N, C)``, ``(N, C, d1, ...)`` or unbatched ``(C,)``;
        floating point.
    target : array
        Integer class indices ``(N,)``, ``(N, d1, ...)`` or ``()``, each in ``[0, C)`` or
        equal to ``ignore_index``. Class probabilities (floating-point targets, which torch
        also accepts) are not supported: they raise ``TypeError``.
    weight : array, optional
        ``(C,)`` rescaling weight of each class, same dtype as ``input``.
    ignore_index : int, default -100
        Targets with this value contribute nothing, to the loss nor to the mean's divisor.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        ``'mean'`` divides the sum by the summed weight of the non-ignored targets (their
        count without ``weight``), also for the label-smoothing term, as torch does.
    label_smoothing : float, default 0.0
        In ``[0, 1]``: the share of the target's mass spread uniformly over the classes.

    Returns
    -------
    array
        A scalar, or the per-element losses (``target``'s shape) for ``'none'``.

    Raises
    ------
    ValueError
        If a target is out of range (the message names the offending values), shapes
        disagree, ``reduction`` is unknown or ``label_smoothing`` is outside ``[0, 1]``.
    TypeError
        If ``input`` is not floating point, ``target`` not integer, or ``weight``'s dtype
        differs from ``input``'s.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> logits = xpnet.asarray([[2.0, 2.0], [3000.0, -3000.0]], dtype="float64")
    >>> round(float(F.cross_entropy(logits, xpnet.asarray([0, 0]))), 6)  # (log 2 + 0) / 2
    0.346574
    """
    xp, classes = _check_class_targets(input, target, weight, ignore_index, reduction)
    ls = _check_label_smoothing(label_smoothing)
    native = native_cross_entropy(xp, input, target, weight, ignore_index, reduction, ls)
    if native is not None:
        return native[0]
    logp = log_softmax_last(xp, _classes_last(xp, input))
    loss = _ClassLoss(xp, logp, target, weight, ignore_index, classes, reduction, ls)
    return as_dtype_of(xp, loss.reduced(), input)


@defvjp(cross_entropy, "input")
def _cross_entropy_vjp(
    input: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> tuple[Any, Pullback]:
    xp, classes = _check_class_targets(input, target, weight, ignore_index, reduction)
    ls = _check_label_smoothing(label_smoothing)
    native = native_cross_entropy(xp, input, target, weight, ignore_index, reduction, ls)
    if native is not None:
        return native
    logp = log_softmax_last(xp, _classes_last(xp, input))
    loss = _ClassLoss(xp, logp, target, weight, ignore_index, classes, reduction, ls)

    def pullback(cotangent: Any) -> tuple[Any]:
        return (_classes_back(xp, loss.logits_cotangent(cotangent)),)

    return as_dtype_of(xp, loss.reduced(), input), pullback
