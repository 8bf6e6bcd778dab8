"""Activations, softmax, linear, flatten and dropout written from their definitions.

Scalar functions use the ``math`` module one element at a time; softmax and linear are plain
loops. Everything is float64 on the host and independent of xpnet.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

SQRT2 = math.sqrt(2.0)


def elementwise(fn: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """Apply a scalar function to every element, in float64."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape)
    for index in np.ndindex(x.shape):
        out[index] = fn(float(x[index]))
    return out


def relu(v: float) -> float:
    return v if v > 0 else 0.0


def relu_grad(v: float) -> float:
    """The convention at 0 (torch's): the gradient is 0 unless v > 0."""
    return 1.0 if v > 0 else 0.0


def leaky_relu(v: float, slope: float = 0.01) -> float:
    return v if v > 0 else slope * v


def leaky_relu_grad(v: float, slope: float = 0.01) -> float:
    """torch's convention: the slope applies at 0 too."""
    return 1.0 if v > 0 else slope


def sigmoid(v: float) -> float:
    # Same function, two algebraic forms: math.exp of a large positive number overflows.
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def tanh(v: float) -> float:
    return math.tanh(v)


def gelu(v: float) -> float:
    """x * Phi(x) = x/2 (1 + erf(x / sqrt 2))."""
    return 0.5 * v * (1.0 + math.erf(v / SQRT2))


def gelu_via_erfc(v: float) -> float:
    """x/2 erfc(-x / sqrt 2): the same value, without cancellation for negative x."""
    return 0.5 * v * math.erfc(-v / SQRT2)


def gelu_tanh(v: float) -> float:
    inner = math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)
    return 0.5 * v * (1.0 + math.tanh(inner))


def relu6(v: float) -> float:
    return min(max(v, 0.0), 6.0)


def relu6_grad(v: float) -> float:
    """torch's hardtanh rule: 1 strictly inside (0, 6), 0 at the bounds."""
    return 1.0 if 0.0 < v < 6.0 else 0.0


def elu(v: float, alpha: float = 1.0) -> float:
    return v if v > 0 else alpha * math.expm1(v)


def elu_grad(v: float, alpha: float = 1.0) -> float:
    """torch's rule: alpha * exp(v) at and below 0."""
    return 1.0 if v > 0 else alpha * math.exp(v)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(v: float) -> float:
    return SELU_SCALE * elu(v, SELU_ALPHA)


def hardsigmoid(v: float) -> float:
    return min(max(v + 3.0, 0.0), 6.0) / 6.0


def hardsigmoid_grad(v: float) -> float:
    """torch's rule: 1/6 strictly inside (-3, 3)."""
    return 1.0 / 6.0 if -3.0 < v < 3.0 else 0.0


def hardswish(v: float) -> float:
    return v * min(max(v + 3.0, 0.0), 6.0) / 6.0


def hardswish_grad(v: float) -> float:
    """torch's rule: v/3 + 1/2 strictly inside (-3, 3), 1 from 3 up, 0 from -3 down."""
    if v <= -3.0:
        return 0.0
    return v / 3.0 + 0.5 if v < 3.0 else 1.0


def silu(v: float) -> float:
    return v * sigmoid(v)


def softplus(v: float, beta: float = 1.0, threshold: float = 20.0) -> float:
    """log(1 + e^(beta v)) / beta, and v where beta v > threshold (torch's switch)."""
    if v * beta > threshold:
        return v
    scaled = v * beta
    # log(1 + e^s) = s + log(1 + e^-s) for large s, to keep math.exp in range.
    return (
        scaled + math.log1p(math.exp(-scaled)) if scaled > 0 else math.log1p(math.exp(scaled))
    ) / beta


def mish(v: float) -> float:
    return v * math.tanh(softplus(v))


def prelu_loops(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x where x > 0, else weight[c] x, with c the index along axis 1 (one channel when
    x has fewer than two axes)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty(x.shape)
    for index in np.ndindex(x.shape):
        slope = float(weight[0]) if len(weight) == 1 else float(weight[index[1]])
        v = float(x[index])
        out[index] = v if v > 0 else slope * v
    return out


def _rows(x: np.ndarray, dim: int) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """View ``x`` as rows along ``dim`` (a 0-d array is one row of one element)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        return x.reshape(1, 1), lambda r: r.reshape(())
    moved = np.moveaxis(x, dim, -1)
    shape = moved.shape
    rows = moved.reshape(-1, shape[-1])
    return rows, lambda r: np.moveaxis(r.reshape(shape), -1, dim)


def softmax_loops(x: np.ndarray, dim: int) -> np.ndarray:
    """exp(x_i) / sum_j exp(x_j); both scaled by exp(-max) so math.exp cannot overflow."""
    rows, restore = _rows(x, dim)
    out = np.empty(rows.shape)
    for r in range(rows.shape[0]):
        m = max(rows[r]) if rows.shape[1] else 0.0
        exps = [math.exp(v - m) for v in rows[r]]
        total = math.fsum(exps)
        for j, e in enumerate(exps):
            out[r, j] = e / total
    return restore(out)


def log_softmax_loops(x: np.ndarray, dim: int) -> np.ndarray:
    """x_i - log(sum_j exp(x_j)), with the max factored out of the sum."""
    rows, restore = _rows(x, dim)
    out = np.empty(rows.shape)
    for r in range(rows.shape[0]):
        m = max(rows[r]) if rows.shape[1] else 0.0
        log_total = m + math.log(math.fsum(math.exp(v - m) for v in rows[r]))
        for j, v in enumerate(rows[r]):
            out[r, j] = v - log_total
    return restore(out)


def linear_loops(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """y[..., o] = b[o] + sum_i x[..., i] w[o, i]."""
    x = np.asarray(x, dtype=np.float64)
    out_features, in_features = w.shape
    y = np.empty((*x.shape[:-1], out_features))
    for lead in np.ndindex(x.shape[:-1]):
        for o in range(out_features):
            total = 0.0 if b is None else float(b[o])
            for i in range(in_features):
                total += float(x[(*lead, i)]) * float(w[o, i])
            y[(*lead, o)] = total
    return y


def flatten_shape(shape: tuple[int, ...], start_dim: int, end_dim: int) -> tuple[int, ...]:
    """torch.flatten's output shape: axes start..end (inclusive) multiplied into one."""
    dims = list(shape) if shape else [1]
    n = len(dims)
    start, end = start_dim % n, end_dim % n
    merged = 1
    for d in dims[start : end + 1]:
        merged *= d
    return (*dims[:start], merged, *dims[end + 1 :])


def dropout_keep_mask(seed: int, shape: tuple[int, ...], p: float) -> np.ndarray:
    """The documented mask: a fresh NumPy generator with this seed, ``random(shape) >= p``."""
    return np.random.default_rng(seed).random(size=shape) >= p
