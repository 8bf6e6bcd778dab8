"""The Gaussian error linear unit, exact (through erfc) and tanh-approximated."""

from __future__ import annotations

import math
from typing import Any

from .._autodiff import Pullback, defvjp, primitive
from .._special import erfc
from ._common import float_input

__all__ = ["gelu"]

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_BETA = math.sqrt(2.0 / math.pi)
_TANH_KAPPA = 0.044715
# Beyond these |x| the gelu terms are saturated (exp(-x**2 / 2) is 0, tanh is +-1) in both
# float32 and float64; clamping there keeps x**2 and x**3 from overflowing.
_GELU_EXACT_CLAMP = 40.0
_GELU_TANH_CLAMP = 100.0


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
    xp = float_input(input)
    return _gelu_forward(xp, input, _check_approximate(approximate))[0]


@defvjp(gelu, "input")
def _gelu_vjp(input: Any, approximate: str = "none") -> tuple[Any, Pullback]:
    xp = float_input(input)
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
