"""Pullbacks of the standard's reductions (sum, mean, prod, max, min, var, std) and of
``cumulative_sum``."""

from __future__ import annotations

import math
from typing import Any

from ._common import emit, expand_reduced, normalize_axes, raw, shape_of
from ._namespace import register

__all__: list[str] = []


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(shape[a] for a in axes)


@register("sum")
def _sum(xp: Any, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
    value = raw(x)
    y = xp.sum(value, axis=axis, dtype=dtype, keepdims=keepdims)
    shape, axes = shape_of(value), normalize_axes(axis, value.ndim)
    return emit("sum", xp, y, [(x, lambda g: expand_reduced(xp, g, shape, axes, keepdims))])


@register("mean")
def _mean(xp: Any, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
    value = raw(x)
    y = xp.mean(value, axis=axis, keepdims=keepdims)
    shape, axes = shape_of(value), normalize_axes(axis, value.ndim)
    count = max(_count(shape, axes), 1)
    return emit(
        "mean", xp, y, [(x, lambda g: expand_reduced(xp, g / count, shape, axes, keepdims))]
    )


def _extremum(name: str) -> Any:
    def rule(xp: Any, x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
        value = raw(x)
        y = getattr(xp, name)(value, axis=axis, keepdims=keepdims)
        shape, axes = shape_of(value), normalize_axes(axis, value.ndim)

        def pullback(g: Any) -> Any:
            # torch's amax/amin rule: the cotangent shared evenly by the elements that tie
            # for the extremum.
            hit = value == expand_reduced(xp, y, shape, axes, keepdims)
            ties = xp.sum(xp.astype(hit, value.dtype), axis=axes, keepdims=True)
            share = expand_reduced(xp, g, shape, axes, keepdims) / ties
            return xp.where(hit, share, 0.0)

        return emit(name, xp, y, [(x, pullback)])

    rule.__name__ = name
    return rule


register("max")(_extremum("max"))
register("min")(_extremum("min"))


@register("prod")
def _prod(
    xp: Any, x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False
) -> Any:
    value = raw(x)
    y = xp.prod(value, axis=axis, dtype=dtype, keepdims=keepdims)
    shape, axes = shape_of(value), normalize_axes(axis, value.ndim)

    def pullback(g: Any) -> Any:
        # d prod / d x_i is the product of the others: prod / x_i where no factor is zero;
        # with one zero, the product of the others for that element and zero elsewhere;
        # with two or more, zero everywhere (torch's rule, without dividing by zero).
        is_zero = value == 0
        zeros = xp.sum(xp.astype(is_zero, value.dtype), axis=axes, keepdims=True)
        others_nonzero = xp.prod(xp.where(is_zero, 1.0, value), axis=axes, keepdims=True)
        safe = xp.where(is_zero, 1.0, value)
        without_zero = others_nonzero / safe  # prod of the others when none is zero
        grad = xp.where(
            zeros == 0, without_zero, xp.where(is_zero & (zeros == 1), others_nonzero, 0.0)
        )
        return expand_reduced(xp, g, shape, axes, keepdims) * grad

    return emit("prod", xp, y, [(x, pullback)])


def _moments(
    xp: Any, value: Any, axis: Any, correction: float
) -> tuple[tuple[int, ...], Any, float]:
    axes = normalize_axes(axis, value.ndim)
    centred = value - xp.mean(value, axis=axes, keepdims=True)
    return axes, centred, _count(shape_of(value), axes) - correction


@register("var")
def _var(
    xp: Any, x: Any, /, *, axis: Any = None, correction: float = 0.0, keepdims: bool = False
) -> Any:
    value = raw(x)
    y = xp.var(value, axis=axis, correction=correction, keepdims=keepdims)
    shape = shape_of(value)

    def pullback(g: Any) -> Any:
        axes, centred, dof = _moments(xp, value, axis, correction)
        return expand_reduced(xp, g, shape, axes, keepdims) * (centred * (2.0 / dof))

    return emit("var", xp, y, [(x, pullback)])


@register("std")
def _std(
    xp: Any, x: Any, /, *, axis: Any = None, correction: float = 0.0, keepdims: bool = False
) -> Any:
    value = raw(x)
    y = xp.std(value, axis=axis, correction=correction, keepdims=keepdims)
    shape = shape_of(value)

    def pullback(g: Any) -> Any:
        axes, centred, dof = _moments(xp, value, axis, correction)
        # torch: zero where the deviation is zero (instead of 0 / 0).
        safe = xp.where(y == 0, 1.0, y)
        scale = xp.where(y == 0, 0.0, g / safe)
        return expand_reduced(xp, scale, shape, axes, keepdims) * (centred / dof)

    return emit("std", xp, y, [(x, pullback)])


@register("cumulative_sum")
def _cumulative_sum(
    xp: Any,
    x: Any,
    /,
    *,
    axis: int | None = None,
    dtype: Any = None,
    include_initial: bool = False,
) -> Any:
    value = raw(x)
    y = xp.cumulative_sum(value, axis=axis, dtype=dtype, include_initial=include_initial)
    along = 0 if axis is None else axis

    def pullback(g: Any) -> Any:
        if include_initial:  # the leading zero depends on nothing
            g = g[(slice(None),) * (along % g.ndim) + (slice(1, None), ...)]
        # Each input reaches every later output: a sum from the end.
        return xp.flip(xp.cumulative_sum(xp.flip(g, axis=along), axis=along), axis=along)

    return emit("cumulative_sum", xp, y, [(x, pullback)])
