"""Pullbacks of ``matmul``, ``tensordot``, ``vecdot`` and ``linalg.vector_norm``."""

from __future__ import annotations

import math
from typing import Any

from ._common import emit, expand_reduced, normalize_axes, raw, shape_of, sum_to
from ._manipulation import _matrix_transpose
from ._namespace import LINALG, register

__all__ = ["matmul"]


@register("matmul")
def matmul(xp: Any, x1: Any, x2: Any, /) -> Any:
    a, b = raw(x1), raw(x2)
    y = a @ b
    shape_a, shape_b = shape_of(a), shape_of(b)

    def as_matrices(g: Any) -> tuple[Any, Any, Any]:
        # 1-D operands are a row (x1) or a column (x2) whose axis the product drops.
        left = a if a.ndim > 1 else xp.reshape(a, (1, shape_a[0]))
        right = b if b.ndim > 1 else xp.reshape(b, (shape_b[0], 1))
        full = shape_of(g)
        if a.ndim == 1:
            full = (*full[:-1], 1, *full[-1:]) if b.ndim > 1 else (*full, 1)
        if b.ndim == 1:
            full = (*full, 1)
        return left, right, xp.reshape(g, full)

    def grad_a(g: Any) -> Any:
        left, right, g2 = as_matrices(g)
        da = g2 @ xp.matrix_transpose(right)
        return xp.reshape(sum_to(xp, da, shape_of(left)), shape_a)

    def grad_b(g: Any) -> Any:
        left, right, g2 = as_matrices(g)
        db = xp.matrix_transpose(left) @ g2
        return xp.reshape(sum_to(xp, db, shape_of(right)), shape_b)

    return emit("matmul", xp, y, [(x1, grad_a), (x2, grad_b)])


def _contracted(axes: Any, ndim1: int, ndim2: int) -> tuple[list[int], list[int]]:
    if isinstance(axes, int):
        return list(range(ndim1 - axes, ndim1)), list(range(axes))
    first, second = axes
    first = [first] if isinstance(first, int) else list(first)
    second = [second] if isinstance(second, int) else list(second)
    return [a % ndim1 for a in first], [b % ndim2 for b in second]


def _inverse(order: list[int]) -> tuple[int, ...]:
    return tuple(sorted(range(len(order)), key=order.__getitem__))


@register("tensordot")
def _tensordot(xp: Any, x1: Any, x2: Any, /, *, axes: Any = 2) -> Any:
    a, b = raw(x1), raw(x2)
    y = xp.tensordot(a, b, axes=axes)
    c1, c2 = _contracted(axes, a.ndim, b.ndim)
    free1 = [i for i in range(a.ndim) if i not in c1]
    free2 = [i for i in range(b.ndim) if i not in c2]
    n1 = len(free1)

    def grad_a(g: Any) -> Any:
        # Contract the output's x2 axes with x2's free axes. What remains of x2 are its
        # contracted axes in increasing order; each stands for the x1 axis it was paired with.
        da = xp.tensordot(g, b, axes=(list(range(n1, n1 + len(free2))), free2))
        return xp.permute_dims(da, _inverse(free1 + [c1[c2.index(j)] for j in sorted(c2)]))

    def grad_b(g: Any) -> Any:
        db = xp.tensordot(a, g, axes=(free1, list(range(n1))))
        return xp.permute_dims(db, _inverse([c2[c1.index(i)] for i in sorted(c1)] + free2))

    return emit("tensordot", xp, y, [(x1, grad_a), (x2, grad_b)])


@register("vecdot")
def _vecdot(xp: Any, x1: Any, x2: Any, /, *, axis: int = -1) -> Any:
    a, b = raw(x1), raw(x2)
    y = xp.vecdot(a, b, axis=axis)
    ndim = max(a.ndim, b.ndim)
    along = axis + ndim if axis < 0 else axis

    def spread(g: Any) -> Any:
        return xp.expand_dims(g, axis=along)

    return emit(
        "vecdot",
        xp,
        y,
        [
            (x1, lambda g: sum_to(xp, spread(g) * b, shape_of(a))),
            (x2, lambda g: sum_to(xp, spread(g) * a, shape_of(b))),
        ],
    )


register("matmul", LINALG)(matmul)
register("tensordot", LINALG)(_tensordot)
register("vecdot", LINALG)(_vecdot)
register("matrix_transpose", LINALG)(_matrix_transpose)


@register("vector_norm", LINALG)
def _vector_norm(
    xp: Any, x: Any, /, *, axis: Any = None, keepdims: bool = False, ord: float = 2
) -> Any:
    value = raw(x)
    y = xp.linalg.vector_norm(value, axis=axis, keepdims=keepdims, ord=ord)
    shape, axes = shape_of(value), normalize_axes(axis, value.ndim)

    def pullback(g: Any) -> Any:
        spread = expand_reduced(xp, g, shape, axes, keepdims)
        norm = expand_reduced(xp, y, shape, axes, keepdims)
        if ord == 1:
            return spread * xp.sign(value)
        if math.isinf(ord):
            hit = xp.abs(value) == norm
            ties = xp.sum(xp.astype(hit, value.dtype), axis=axes, keepdims=True)
            return xp.where(hit, spread * xp.sign(value) / ties, 0.0)
        if ord == 0:
            return xp.zeros_like(value)
        # d|x|_p / dx = x |x|^(p-2) / |x|_p^(p-1); zero where the norm is zero (torch).
        safe = xp.where(norm == 0, 1.0, norm)
        if ord == 2:
            scaled = value / safe
        else:
            scaled = value * xp.abs(value) ** (ord - 2) / safe ** (ord - 1)
        return xp.where(norm == 0, 0.0, spread * scaled)

    return emit("vector_norm", xp, y, [(x, pullback)])
