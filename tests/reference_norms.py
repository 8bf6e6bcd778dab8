"""Layer, group and instance normalisation written from their definitions: each element's
group of values collected one by one, its mean and biased variance summed in Python."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

import numpy as np


def standardize_loops(
    x: np.ndarray, key: Callable[[tuple[int, ...]], Hashable], eps: float
) -> np.ndarray:
    """(x - mean) / sqrt(var + eps), mean and variance over the elements sharing a key."""
    x = np.asarray(x, dtype=np.float64)
    members: dict[Hashable, list[float]] = {}
    for index in np.ndindex(x.shape):
        members.setdefault(key(index), []).append(float(x[index]))
    stats = {}
    for k, values in members.items():
        mean = math.fsum(values) / len(values)
        var = math.fsum((v - mean) ** 2 for v in values) / len(values)
        stats[k] = (mean, var)
    out = np.empty(x.shape)
    for index in np.ndindex(x.shape):
        mean, var = stats[key(index)]
        out[index] = (float(x[index]) - mean) / math.sqrt(var + eps)
    return out


def layer_norm_loops(x, normalized_ndim, weight=None, bias=None, eps=1e-5):  # type: ignore[no-untyped-def]
    lead = x.ndim - normalized_ndim
    y = standardize_loops(x, lambda i: i[:lead], eps)
    for index in np.ndindex(x.shape):
        tail = index[lead:]
        if weight is not None:
            y[index] *= weight[tail]
        if bias is not None:
            y[index] += bias[tail]
    return y


def _channel_affine(y, weight, bias):  # type: ignore[no-untyped-def]
    for index in np.ndindex(y.shape):
        if weight is not None:
            y[index] *= weight[index[1]]
        if bias is not None:
            y[index] += bias[index[1]]
    return y


def group_norm_loops(x, groups, weight=None, bias=None, eps=1e-5):  # type: ignore[no-untyped-def]
    per_group = x.shape[1] // groups
    y = standardize_loops(x, lambda i: (i[0], i[1] // per_group), eps)
    return _channel_affine(y, weight, bias)


def instance_norm_loops(x, weight=None, bias=None, eps=1e-5):  # type: ignore[no-untyped-def]
    y = standardize_loops(x, lambda i: (i[0], i[1]), eps)
    return _channel_affine(y, weight, bias)
