"""Pullbacks of the standard's element-wise functions and of ``where``, ``clip`` and
``astype``, written once against the standard.

Where a derivative is undefined at a point (``abs`` at 0, ``maximum`` at a tie, ``pow``
with a zero base) the value is torch's, so that gradients match torch autograd.
"""

from __future__ import annotations

import math
import operator as op
from collections.abc import Callable
from typing import Any

from ._common import device_of, emit, raw, shape_of, sum_to
from ._namespace import NO_GRADIENT, register
from ._tape import OPERATORS, TrackedArray

__all__: list[str] = []

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)

# ------------------------------------------------------------------ unary functions

#: name -> d(output)/d(input) times the cotangent: ``(xp, x, y, g) -> gradient``.
_UNARY: dict[str, Callable[[Any, Any, Any, Any], Any]] = {
    "abs": lambda xp, x, y, g: g * xp.sign(x),
    "acos": lambda xp, x, y, g: -g / xp.sqrt(1.0 - x * x),
    "acosh": lambda xp, x, y, g: g / xp.sqrt((x - 1.0) * (x + 1.0)),
    "asin": lambda xp, x, y, g: g / xp.sqrt(1.0 - x * x),
    "asinh": lambda xp, x, y, g: g / xp.sqrt(x * x + 1.0),
    "atan": lambda xp, x, y, g: g / (x * x + 1.0),
    "atanh": lambda xp, x, y, g: g / (1.0 - x * x),
    "cos": lambda xp, x, y, g: -g * xp.sin(x),
    "cosh": lambda xp, x, y, g: g * xp.sinh(x),
    "exp": lambda xp, x, y, g: g * y,
    "expm1": lambda xp, x, y, g: g * (y + 1.0),
    "log": lambda xp, x, y, g: g / x,
    "log1p": lambda xp, x, y, g: g / (x + 1.0),
    "log2": lambda xp, x, y, g: g / (x * _LN2),
    "log10": lambda xp, x, y, g: g / (x * _LN10),
    "negative": lambda xp, x, y, g: -g,
    "positive": lambda xp, x, y, g: g,
    "real": lambda xp, x, y, g: g,
    "conj": lambda xp, x, y, g: g,
    "reciprocal": lambda xp, x, y, g: -g * (y * y),
    "sin": lambda xp, x, y, g: g * xp.cos(x),
    "sinh": lambda xp, x, y, g: g * xp.cosh(x),
    "sqrt": lambda xp, x, y, g: g / (2.0 * y),
    "square": lambda xp, x, y, g: g * (2.0 * x),
    "tan": lambda xp, x, y, g: g * (1.0 + y * y),
    "tanh": lambda xp, x, y, g: g * (1.0 - y * y),
    # Piecewise constant: a zero gradient (torch's), not none, so that a parameter reached
    # only through them still gets one.
    "ceil": lambda xp, x, y, g: xp.zeros_like(g),
    "floor": lambda xp, x, y, g: xp.zeros_like(g),
    "round": lambda xp, x, y, g: xp.zeros_like(g),
    "sign": lambda xp, x, y, g: xp.zeros_like(g),
    "trunc": lambda xp, x, y, g: xp.zeros_like(g),
}

_OPERATOR_UNARY: dict[str, Callable[[Any], Any]] = {
    "negative": op.neg,
    "positive": op.pos,
    "abs": op.abs,
}


def _unary_rule(name: str, derivative: Callable[[Any, Any, Any, Any], Any]) -> Callable[..., Any]:
    forward = _OPERATOR_UNARY.get(name)

    def rule(xp: Any, x: Any, /) -> TrackedArray:
        value = raw(x)
        y = forward(value) if forward is not None else getattr(xp, name)(value)
        return emit(name, xp, y, [(x, lambda g: derivative(xp, value, y, g))])

    rule.__name__ = name
    return rule


for _name, _derivative in _UNARY.items():
    OPERATORS[_name] = register(_name)(_unary_rule(_name, _derivative))


# ----------------------------------------------------------------- binary functions


def _as_array(xp: Any, value: Any, like: Any) -> Any:
    """A Python scalar operand as a 0-d array like ``like`` (arrays pass through)."""
    if isinstance(value, int | float | bool):
        return xp.asarray(value, dtype=like.dtype, device=device_of(like))
    return value


def _maximum_grads(xp: Any, a: Any, b: Any, y: Any, g: Any) -> tuple[Any, Any]:
    # torch: half the cotangent to each side of a tie.
    split = xp.where(a == b, g * 0.5, g)
    return xp.where(a < b, 0.0, split), xp.where(a > b, 0.0, split)


def _minimum_grads(xp: Any, a: Any, b: Any, y: Any, g: Any) -> tuple[Any, Any]:
    split = xp.where(a == b, g * 0.5, g)
    return xp.where(a > b, 0.0, split), xp.where(a < b, 0.0, split)


def _pow_base(xp: Any, a: Any, b: Any, y: Any, g: Any) -> Any:
    if isinstance(b, int | float):
        if b == 0:
            return xp.zeros_like(g)
        return g * (b * a ** (b - 1))
    # torch: zero where the exponent is zero (0 * inf would be nan).
    lowered = xp.where(b == 0, 1.0, b - 1.0)
    return xp.where(b == 0, 0.0, g * (b * a**lowered))


def _pow_exponent(xp: Any, a: Any, b: Any, y: Any, g: Any) -> Any:
    if isinstance(a, int | float):
        if a == 0:  # torch: zero where the base is zero and the exponent non-negative
            return xp.where(b >= 0, 0.0, -math.inf * g)
        return g * y * math.log(a)
    zero_base = (a == 0) & (b >= 0)
    safe = xp.where(zero_base, 1.0, a)
    return xp.where(zero_base, 0.0, g * y * xp.log(safe))


def _copysign_magnitude(xp: Any, a: Any, b: Any, y: Any, g: Any) -> Any:
    # torch: the sign change y / a, and zero where a is zero.
    safe = xp.where(a == 0, 1.0, a)
    return xp.where(a == 0, 0.0, g * (y / safe))


def _floor_div(xp: Any, a: Any, b: Any) -> Any:
    return xp.floor(xp.divide(_as_array(xp, a, b), _as_array(xp, b, a)))


#: name -> (forward operator, gradient for x1, gradient for x2), the gradients as
#: ``(xp, x1, x2, y, g) -> array`` before unbroadcasting.
_BINARY: dict[
    str, tuple[Callable[[Any, Any], Any] | None, Callable[..., Any], Callable[..., Any]]
] = {
    "add": (op.add, lambda xp, a, b, y, g: g, lambda xp, a, b, y, g: g),
    "subtract": (op.sub, lambda xp, a, b, y, g: g, lambda xp, a, b, y, g: -g),
    "multiply": (op.mul, lambda xp, a, b, y, g: g * b, lambda xp, a, b, y, g: g * a),
    "divide": (op.truediv, lambda xp, a, b, y, g: g / b, lambda xp, a, b, y, g: -g * (y / b)),
    "pow": (op.pow, _pow_base, _pow_exponent),
    "remainder": (
        op.mod,
        lambda xp, a, b, y, g: g,
        lambda xp, a, b, y, g: -g * _floor_div(xp, a, b),
    ),
    "floor_divide": (
        op.floordiv,
        lambda xp, a, b, y, g: xp.zeros_like(g),
        lambda xp, a, b, y, g: xp.zeros_like(g),
    ),
    "maximum": (
        None,
        lambda xp, a, b, y, g: _maximum_grads(xp, a, b, y, g)[0],
        lambda xp, a, b, y, g: _maximum_grads(xp, a, b, y, g)[1],
    ),
    "minimum": (
        None,
        lambda xp, a, b, y, g: _minimum_grads(xp, a, b, y, g)[0],
        lambda xp, a, b, y, g: _minimum_grads(xp, a, b, y, g)[1],
    ),
    "atan2": (
        None,
        lambda xp, a, b, y, g: g * b / (a * a + b * b),
        lambda xp, a, b, y, g: -g * a / (a * a + b * b),
    ),
    "hypot": (None, lambda xp, a, b, y, g: g * a / y, lambda xp, a, b, y, g: g * b / y),
    "logaddexp": (
        None,
        lambda xp, a, b, y, g: g * xp.exp(a - y),
        lambda xp, a, b, y, g: g * xp.exp(b - y),
    ),
    "copysign": (None, _copysign_magnitude, lambda xp, a, b, y, g: xp.zeros_like(g)),
}


def _binary_rule(
    name: str,
    forward: Callable[[Any, Any], Any] | None,
    grad1: Callable[..., Any],
    grad2: Callable[..., Any],
) -> Callable[..., Any]:
    def rule(xp: Any, x1: Any, x2: Any, /, *, operator: bool = False) -> Any:
        a, b = raw(x1), raw(x2)
        if operator and forward is not None:
            y = forward(a, b)
            if y is NotImplemented:
                return NotImplemented
        else:
            y = getattr(xp, name)(a, b)
        links = []
        if type(x1) is TrackedArray:
            shape1 = shape_of(a)
            links.append((x1, lambda g: sum_to(xp, grad1(xp, a, b, y, g), shape1)))
        if type(x2) is TrackedArray:
            shape2 = shape_of(b)
            links.append((x2, lambda g: sum_to(xp, grad2(xp, a, b, y, g), shape2)))
        return emit(name, xp, y, links)

    rule.__name__ = name
    return rule


for _name, (_forward, _grad1, _grad2) in _BINARY.items():
    OPERATORS[_name] = register(_name)(_binary_rule(_name, _forward, _grad1, _grad2))


def _matmul_operator(xp: Any, x1: Any, x2: Any, /, *, operator: bool = False) -> Any:
    from ._linalg import matmul

    return matmul(xp, x1, x2)


OPERATORS["matmul"] = _matmul_operator

# Comparisons and bitwise operators: results that carry no gradient.
_NO_GRADIENT_OPERATORS = {
    "less": op.lt,
    "less_equal": op.le,
    "greater": op.gt,
    "greater_equal": op.ge,
    "equal": op.eq,
    "not_equal": op.ne,
    "bitwise_and": op.and_,
    "bitwise_or": op.or_,
    "bitwise_xor": op.xor,
    "bitwise_left_shift": op.lshift,
    "bitwise_right_shift": op.rshift,
}
assert set(_NO_GRADIENT_OPERATORS) <= NO_GRADIENT


def _constant_operator(forward: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def apply(xp: Any, x1: Any, x2: Any, /, *, operator: bool = True) -> Any:
        y = forward(raw(x1), raw(x2))
        return y if y is NotImplemented else TrackedArray(y, None, 0, xp)

    return apply


for _name, _forward_op in _NO_GRADIENT_OPERATORS.items():
    OPERATORS[_name] = _constant_operator(_forward_op)
OPERATORS["bitwise_invert"] = lambda xp, x: TrackedArray(op.invert(raw(x)), None, 0, xp)


# ----------------------------------------------------------- where, clip and astype


@register("where")
def _where(xp: Any, condition: Any, x1: Any, x2: Any, /) -> Any:
    c, a, b = raw(condition), raw(x1), raw(x2)
    y = xp.where(c, a, b)
    links = []
    if type(x1) is TrackedArray:
        shape1 = shape_of(a)
        links.append((x1, lambda g: sum_to(xp, xp.where(c, g, 0.0), shape1)))
    if type(x2) is TrackedArray:
        shape2 = shape_of(b)
        links.append((x2, lambda g: sum_to(xp, xp.where(c, 0.0, g), shape2)))
    return emit("where", xp, y, links)


@register("clip")
def _clip(xp: Any, x: Any, /, min: Any = None, max: Any = None) -> Any:
    value, low, high = raw(x), raw(min), raw(max)
    y = xp.clip(value, low, high)
    # y = minimum(maximum(x, low), high): the bounds apply in that order (low > high gives
    # high), and torch's rule lets the gradient through at the bounds themselves.
    raised = value if low is None else xp.maximum(value, low)

    def inside(g: Any) -> Any:
        kept = g
        if low is not None:
            kept = xp.where(value >= low, kept, 0.0)
        if high is not None:
            kept = xp.where(raised <= high, kept, 0.0)
        return kept

    links = [(x, inside)]
    if type(min) is TrackedArray:
        shape_low = shape_of(low)

        def to_low(g: Any) -> Any:
            hit = value < low if high is None else (value < low) & (low <= high)
            return sum_to(xp, xp.where(hit, g, 0.0), shape_low)

        links.append((min, to_low))
    if type(max) is TrackedArray:
        shape_high = shape_of(high)
        links.append((max, lambda g: sum_to(xp, xp.where(raised > high, g, 0.0), shape_high)))
    return emit("clip", xp, y, links)


@register("astype")
def _astype(xp: Any, x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
    value = raw(x)
    y = (
        xp.astype(value, dtype, copy=copy)
        if device is None
        else (xp.astype(value, dtype, copy=copy, device=device))
    )
    source = value.dtype
    if not xp.isdtype(source, "real floating"):
        return TrackedArray(y, None, 0, xp)
    return emit("astype", xp, y, [(x, lambda g: xp.astype(g, source))])
