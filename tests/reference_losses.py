"""Losses and batch normalisation written from their definitions with plain loops, in float64.

Independent of xpnet: Python floats and ``math`` per element, NumPy only for storage.
"""

from __future__ import annotations

import math

import numpy as np


def _log_softmax(scores: list[float]) -> list[float]:
    """log p_c = s_c - log sum_k exp(s_k), shifted by the maximum (logits may be +-3000)."""
    top = max(scores)
    log_total = top + math.log(sum(math.exp(s - top) for s in scores))
    return [s - log_total for s in scores]


def _class_positions(x: np.ndarray) -> tuple[np.ndarray, list[tuple[int, ...]], int]:
    """Batched view ``(N, C, d...)`` of a class-score array and its element positions."""
    batched = x[None] if x.ndim == 1 else x
    classes = batched.shape[1]
    positions = [
        (n, *rest) for n in range(batched.shape[0]) for rest in np.ndindex(*batched.shape[2:])
    ]
    return batched, positions, classes


def nll_loss_loops(
    logp: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    log_softmax: bool = False,
) -> np.ndarray:
    """loss_i = -sum_c w_c q_ic log p_ic with q_ic = (1 - ls) [c == t_i] + ls / C.

    Ignored elements count 0; 'mean' divides the sum by sum_i w_{t_i} over non-ignored i.
    With ``log_softmax`` the scores are logits (cross-entropy).
    """
    batched, positions, classes = _class_positions(np.asarray(logp, dtype=float))
    targets = np.asarray(target)[None] if np.ndim(logp) == 1 else np.asarray(target)
    w = np.ones(classes) if weight is None else np.asarray(weight, dtype=float)
    losses = np.zeros(targets.shape)
    total = 0.0
    divisor = 0.0
    for pos in positions:
        t = int(targets[pos])
        if t == ignore_index:
            continue
        scores = [float(batched[(pos[0], c, *pos[1:])]) for c in range(classes)]
        logs = _log_softmax(scores) if log_softmax else scores
        loss = 0.0
        for c in range(classes):
            q = (1 - label_smoothing) * (c == t) + label_smoothing / classes
            if q != 0.0:
                loss -= w[c] * q * logs[c]
        losses[pos] = loss
        total += loss
        divisor += w[t]
    if reduction == "none":
        return losses[0] if np.ndim(logp) == 1 else losses
    if reduction == "sum":
        return np.asarray(total)
    return np.asarray(total / divisor if divisor != 0 else math.nan)


def cross_entropy_loops(
    logits: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> np.ndarray:
    """Cross-entropy: the smoothed, weighted negative log-likelihood of softmax(logits)."""
    return nll_loss_loops(
        logits, target, weight, ignore_index, reduction, label_smoothing, log_softmax=True
    )


def _reduce(losses: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return losses
    total = 0.0
    for value in losses.ravel():
        total += float(value)
    return np.asarray(total if reduction == "sum" else total / losses.size)


def mse_loss_loops(x: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    losses = np.zeros(x.shape)
    for pos in np.ndindex(*x.shape):
        losses[pos] = (float(x[pos]) - float(t[pos])) ** 2
    return _reduce(losses, reduction)


def l1_loss_loops(x: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    losses = np.zeros(x.shape)
    for pos in np.ndindex(*x.shape):
        losses[pos] = abs(float(x[pos]) - float(t[pos]))
    return _reduce(losses, reduction)


def smooth_l1_loss_loops(
    x: np.ndarray, t: np.ndarray, reduction: str = "mean", beta: float = 1.0
) -> np.ndarray:
    """0.5 d^2 / beta where |d| < beta, else |d| - beta / 2 (|d| when beta is 0)."""
    losses = np.zeros(x.shape)
    for pos in np.ndindex(*x.shape):
        d = float(x[pos]) - float(t[pos])
        losses[pos] = 0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta
    return _reduce(losses, reduction)


def huber_loss_loops(
    x: np.ndarray, t: np.ndarray, reduction: str = "mean", delta: float = 1.0
) -> np.ndarray:
    """0.5 d^2 where |d| < delta, else delta (|d| - delta / 2)."""
    losses = np.zeros(x.shape)
    for pos in np.ndindex(*x.shape):
        d = float(x[pos]) - float(t[pos])
        losses[pos] = 0.5 * d * d if abs(d) < delta else delta * (abs(d) - 0.5 * delta)
    return _reduce(losses, reduction)


def _log_sigmoid(x: float) -> float:
    """log(1 / (1 + exp(-x))), evaluated without overflow for |x| in the thousands."""
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def bce_with_logits_loops(
    x: np.ndarray,
    t: np.ndarray,
    weight: np.ndarray | None = None,
    reduction: str = "mean",
    pos_weight: np.ndarray | None = None,
) -> np.ndarray:
    """loss = -w (pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))), weights broadcast."""
    w = np.broadcast_to(1.0 if weight is None else weight, x.shape)
    pw = np.broadcast_to(1.0 if pos_weight is None else pos_weight, x.shape)
    losses = np.zeros(x.shape)
    for pos in np.ndindex(*x.shape):
        xi, ti = float(x[pos]), float(t[pos])
        log_p = _log_sigmoid(xi)
        log_not_p = _log_sigmoid(-xi)  # log(1 - sigmoid(x)) = log sigmoid(-x)
        losses[pos] = -float(w[pos]) * (float(pw[pos]) * ti * log_p + (1 - ti) * log_not_p)
    return _reduce(losses, reduction)


def batch_norm_loops(
    x: np.ndarray,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Per channel c: y = (x - mu_c) / sqrt(var_c + eps) * w_c + b_c.

    Training: mu_c, var_c are the mean and biased variance over every (n, spatial) value
    of channel c; running stats become (1 - m) * running + m * stat with the unbiased
    variance. Evaluation: mu_c, var_c are the running statistics, returned unchanged.
    """
    channels = x.shape[1]
    y = np.zeros(x.shape)
    new_mean = None if running_mean is None else np.array(running_mean, dtype=float)
    new_var = None if running_var is None else np.array(running_var, dtype=float)
    for c in range(channels):
        positions = [(n, c, *rest) for n in range(x.shape[0]) for rest in np.ndindex(*x.shape[2:])]
        values = [float(x[p]) for p in positions]
        if training:
            m = len(values)
            mu = sum(values) / m
            var = sum((v - mu) ** 2 for v in values) / m
            if new_mean is not None and new_var is not None:
                new_mean[c] = (1 - momentum) * new_mean[c] + momentum * mu
                new_var[c] = (1 - momentum) * new_var[c] + momentum * var * m / (m - 1)
        else:
            mu, var = float(running_mean[c]), float(running_var[c])
        scale = 1.0 if weight is None else float(weight[c])
        shift = 0.0 if bias is None else float(bias[c])
        for p, v in zip(positions, values, strict=True):
            y[p] = (v - mu) / math.sqrt(var + eps) * scale + shift
    return y, new_mean, new_var
