"""The error function from standard array operations.

The Array API standard has no ``erf``. This module evaluates it with W. J. Cody's rational
Chebyshev approximations ("Rational Chebyshev approximations for the error function",
Math. Comp. 23 (1969) 631-637), whose coefficients are accurate to about double-precision
round-off:

* ``|x| <= 0.46875``: ``erf(x) = x R1(x**2)``;
* ``0.46875 < |x| <= 4``: ``erfc(|x|) = exp(-x**2) R2(|x|)``;
* ``|x| > 4``: ``erfc(|x|) = exp(-x**2) / |x| * (1 / sqrt(pi) + R3(1 / x**2) / x**2)``.

The ranges are evaluated for every element and picked with ``where`` (no branches on data).
Each range sees its argument clamped into the range, so no branch overflows, divides by zero
or forms ``inf - inf`` on elements it does not own.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["erf", "erfc"]

_THRESHOLD = 0.46875
_MIDDLE_END = 4.0
# erfc underflows to zero well before 30 in float64; clamping there keeps y**2 finite.
_TAIL_END = 30.0
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)

# R1(z) = (a0 + a1 z + ... + a4 z**4) / (b0 + b1 z + ... + b3 z**3 + z**4), in Horner order.
_R1_NUM = (
    1.85777706184603153e-1,
    3.16112374387056560e00,
    1.13864154151050156e02,
    3.77485237685302021e02,
    3.20937758913846947e03,
)
_R1_DEN = (
    1.0,
    2.36012909523441209e01,
    2.44024637934444173e02,
    1.28261652607737228e03,
    2.84423683343917062e03,
)
# R2(y): degree 8 over degree 8 (monic), highest power first.
_R2_NUM = (
    2.15311535474403846e-8,
    5.64188496988670089e-1,
    8.88314979438837594e00,
    6.61191906371416295e01,
    2.98635138197400131e02,
    8.81952221241769090e02,
    1.71204761263407058e03,
    2.05107837782607147e03,
    1.23033935479799725e03,
)
_R2_DEN = (
    1.0,
    1.57449261107098347e01,
    1.17693950891312499e02,
    5.37181101862009858e02,
    1.62138957456669019e03,
    3.29079923573345963e03,
    4.36261909014324716e03,
    3.43936767414372164e03,
    1.23033935480374942e03,
)
# R3(z), z = 1 / x**2: degree 5 over degree 5 (monic), highest power first; the result is
# multiplied by z once more.
_R3_NUM = (
    1.63153871373020978e-2,
    3.05326634961232344e-1,
    3.60344899949804439e-1,
    1.25781726111229246e-1,
    1.60837851487422766e-2,
    6.58749161529837803e-4,
)
_R3_DEN = (
    1.0,
    2.56852019228982242e00,
    1.87295284992346725e00,
    5.27905102951428412e-1,
    6.05183413124413191e-2,
    2.33520497626869185e-3,
)


def _horner(coefficients: tuple[float, ...], t: Any) -> Any:
    """``c[0] t**n + ... + c[n]`` for an array ``t`` (python-float coefficients keep t's dtype)."""
    result = coefficients[0] * t + coefficients[1]
    for c in coefficients[2:]:
        result = result * t + c
    return result


def _exp_minus_square(xp: Any, y: Any) -> Any:
    """``exp(-y**2)`` without the rounding error of forming ``y**2`` for large ``y``.

    ``y = h + r`` with ``h`` a multiple of 1/16, so ``h**2`` is exact and
    ``y**2 = h**2 + (y - h)(y + h)``.
    """
    head = xp.trunc(y * 16.0) / 16.0
    return xp.exp(-head * head) * xp.exp(-(y - head) * (y + head))


def _pieces(xp: Any, x: Any) -> tuple[Any, Any, Any]:
    """Return ``(small, erf_small, erfc_abs)``.

    ``small`` marks ``|x| <= 0.46875`` where ``erf_small`` is valid; ``erfc_abs`` is
    ``erfc(|x|)`` where ``small`` is false.
    """
    y = xp.abs(x)
    small = y <= _THRESHOLD
    zero = xp.zeros_like(x)
    xs = xp.where(small, x, zero)
    z = xs * xs
    erf_small = xs * _horner(_R1_NUM, z) / _horner(_R1_DEN, z)

    yb = xp.clip(y, min=_THRESHOLD, max=_TAIL_END)
    ym = xp.clip(yb, max=_MIDDLE_END)
    yt = xp.clip(yb, min=_MIDDLE_END)
    middle = _horner(_R2_NUM, ym) / _horner(_R2_DEN, ym)
    zt = 1.0 / (yt * yt)
    tail = (_INV_SQRT_PI - zt * _horner(_R3_NUM, zt) / _horner(_R3_DEN, zt)) / yt
    erfc_abs = xp.where(yb <= _MIDDLE_END, middle, tail) * _exp_minus_square(xp, yb)
    return small, erf_small, erfc_abs


def erf(xp: Any, x: Any) -> Any:
    """The error function ``2 / sqrt(pi) * integral_0^x exp(-t**2) dt``, elementwise.

    Parameters
    ----------
    xp : namespace
        The array namespace of ``x``.
    x : array
        Real floating-point values.

    Returns
    -------
    array
        ``erf(x)`` with ``x``'s dtype and device; NaN where ``x`` is NaN.
    """
    small, erf_small, erfc_abs = _pieces(xp, x)
    large = (0.5 - erfc_abs) + 0.5
    result = xp.where(small, erf_small, xp.where(x < 0, -large, large))
    return xp.where(xp.isnan(x), x, result)


def erfc(xp: Any, x: Any) -> Any:
    """The complementary error function ``1 - erf(x)``, accurate in the right tail.

    Parameters
    ----------
    xp : namespace
        The array namespace of ``x``.
    x : array
        Real floating-point values.

    Returns
    -------
    array
        ``erfc(x)`` with ``x``'s dtype and device; NaN where ``x`` is NaN.
    """
    small, erf_small, erfc_abs = _pieces(xp, x)
    large = xp.where(x < 0, 2.0 - erfc_abs, erfc_abs)
    result = xp.where(small, 1.0 - erf_small, large)
    return xp.where(xp.isnan(x), x, result)
