"""Weight initialisation from the seeded host generator.

Arrays in the standard need not be mutable, so unlike ``torch.nn.init`` these functions
*return* a new array instead of filling one in place. The numbers are drawn on the host
(``xpnet.random``), so one seed gives the same weights on every backend; the result is
then placed on the active backend (or ``device``) with the requested dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .. import backends
from ..random import Generator, resolve_rng

__all__ = [
    "calculate_gain",
    "constant",
    "fans",
    "glorot_normal",
    "glorot_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight shape, as torch computes them.

    For ``(out, in)`` linear weights and ``(out, in, kH, kW)`` conv weights, the receptive
    field size multiplies both fans.
    """
    if len(shape) < 2:
        raise ValueError(f"shape: fans need at least 2 dimensions, got {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (torch's table)."""
    linear = {"linear", "conv1d", "conv2d", "conv3d", "sigmoid", "identity"}
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(
        f"nonlinearity: expected one of {sorted([*linear, 'tanh', 'relu', 'leaky_relu', 'selu'])},"
        f" got {nonlinearity!r}"
    )


def _place(values: Any, dtype: str, device: Any) -> Any:
    active = backends.get_backend()
    if device is None:
        return backends.asarray(values, dtype=dtype)
    with backends.use_backend(active.name, device):
        return backends.asarray(values, dtype=dtype)


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(int(s) for s in shape)
    if any(s < 0 for s in dims):
        raise ValueError(f"shape: expected non-negative sizes, got {tuple(shape)}")
    return dims


def uniform(
    shape: Sequence[int],
    low: float = 0.0,
    high: float = 1.0,
    *,
    rng: Generator | int | None = None,
    dtype: str = "float32",
    device: Any = None,
) -> Any:
    """Draw from U(low, high)."""
    values = resolve_rng(rng).uniform(low, high, size=_check_shape(shape))
    return _place(values, dtype, device)


def normal(
    shape: Sequence[int],
    mean: float = 0.0,
    std: float = 1.0,
    *,
    rng: Generator | int | None = None,
    dtype: str = "float32",
    device: Any = None,
) -> Any:
    """Draw from N(mean, std**2)."""
    values = resolve_rng(rng).normal(mean, std, size=_check_shape(shape))
    return _place(values, dtype, device)


def constant(
    shape: Sequence[int], value: float, *, dtype: str = "float32", device: Any = None
) -> Any:
    """An array filled with ``value``."""
    xp = backends.get_backend().xp
    return _place(xp.full(_check_shape(shape), value), dtype, device)


def zeros(shape: Sequence[int], *, dtype: str = "float32", device: Any = None) -> Any:
    """An array of zeros."""
    return constant(shape, 0.0, dtype=dtype, device=device)


def _kaiming_std(shape: Sequence[int], a: float, mode: str, nonlinearity: str) -> float:
    fan_in, fan_out = fans(shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode: expected 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"shape: cannot initialise a weight with zero fan, got {tuple(shape)}")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform(
    shape: Sequence[int],
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    rng: Generator | int | None = None,
    dtype: str = "float32",
    device: Any = None,
) -> Any:
    """He et al. (2015) uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)``."""
    bound = math.sqrt(3.0) * _kaiming_std(shape, a, mode, nonlinearity)
    return uniform(shape, -bound, bound, rng=rng, dtype=dtype, device=device)


def kaiming_normal(
    shape: Sequence[int],
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    rng: Generator | int | None = None,
    dtype: str = "float32",
    device: Any = None,
) -> Any:
    """He et al. (2015) normal: N(0, std**2) with ``std = gain / sqrt(fan)``."""
    std = _kaiming_std(shape, a, mode, nonlinearity)
    return normal(shape, 0.0, std, rng=rng, dtype=dtype, device=device)


def glorot_uniform(
    shape: Sequence[int],
    gain: float = 1.0,
    *,
    rng: Generator | int | None = None,
    dtype: str = "float32",
    device: Any = None,
) -> Any:
    """Glorot & Bengio (2010) uniform: ``b = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -bound, bound, rng=rng, dtype=dtype, device=device)


def glorot_normal(
    shape: Sequence[int],
    gain: float = 1.0,
    *,
    rng: Generator | int | None = None,
    dtype: str = "float32",
    device: Any = None,
) -> Any:
    """Glorot & Bengio (2010) normal: ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return normal(shape, 0.0, std, rng=rng, dtype=dtype, device=device)


# torch's names for the Glorot initialisers.
xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
