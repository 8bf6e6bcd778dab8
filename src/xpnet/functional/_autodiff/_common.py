"""What the pullbacks of the standard's functions share: recording one step from its
inputs and their pullbacks, unbroadcasting, and axis arithmetic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat

from .._reductions import sum_to_shape
from ._tape import Node, TrackedArray, record, record_many

__all__ = [
    "Link",
    "emit",
    "emit_many",
    "expand_reduced",
    "normalize_axes",
    "raw",
    "raw_all",
    "shape_of",
    "sum_to",
]

#: An input of a step and the function that pulls the output's cotangent back to it.
Link = tuple[Any, Callable[[Any], Any]]


def raw(x: Any) -> Any:
    """The backend value of ``x`` (``x`` itself when it is not tracked)."""
    return x._value if type(x) is TrackedArray else x


def raw_all(values: Any) -> Any:
    """``values`` (an argument: a value, or a list or tuple of them) unwrapped."""
    if type(values) is TrackedArray:
        return values._value
    if isinstance(values, list | tuple):
        return type(values)(raw(v) for v in values)
    return values


def carries_gradient(x: Any) -> bool:
    """Whether ``x`` is a tracked array through which a gradient flows."""
    return type(x) is TrackedArray and x._node is not None


def shape_of(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


def _gather(links: Sequence[Link]) -> tuple[tuple[tuple[Node, int], ...], list[Callable[..., Any]]]:
    parents: list[tuple[Node, int]] = []
    pullbacks: list[Callable[..., Any]] = []
    for arg, pullback in links:
        if type(arg) is TrackedArray and arg._node is not None:
            parents.append((arg._node, arg._index))
            pullbacks.append(pullback)
    return tuple(parents), pullbacks


def emit(name: str, xp: Any, value: Any, links: Sequence[Link]) -> TrackedArray:
    """The tracked result ``value`` of step ``name``; each link pairs an input with the
    pullback of the output's cotangent to that input (run only for inputs that carry a
    gradient)."""
    parents, pullbacks = _gather(links)
    if not parents:
        return TrackedArray(value, None, 0, xp)
    if len(pullbacks) == 1:
        only = pullbacks[0]

        def pullback(g: Any) -> tuple[Any, ...]:
            return (only(g),)

    else:

        def pullback(g: Any) -> tuple[Any, ...]:
            return tuple(fn(g) for fn in pullbacks)

    return record(name, xp, value, parents, pullback)


def emit_many(name: str, xp: Any, values: Sequence[Any], links: Sequence[Link]) -> list[Any]:
    """As :func:`emit` for a step with several outputs: each link's pullback takes the
    tuple of the outputs' cotangents (``None`` where one received none)."""
    parents, pullbacks = _gather(links)

    def pullback(gs: Any) -> tuple[Any, ...]:
        return tuple(fn(gs) for fn in pullbacks)

    return record_many(name, xp, values, parents, pullback)


def sum_to(xp: Any, g: Any, shape: tuple[int, ...]) -> Any:
    """The adjoint of broadcasting an array of ``shape`` to ``g.shape``."""
    if shape_of(g) == shape:
        return g
    return xp.reshape(sum_to_shape(xp, g, shape), shape)


def normalize_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, an int or a sequence of ints) as sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a + ndim if a < 0 else a for a in axes))


def expand_reduced(
    xp: Any, g: Any, shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool
) -> Any:
    """A reduction's cotangent ``g`` broadcast back over the reduced ``axes`` of
    ``shape``."""
    if not keepdims:
        kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
        g = xp.reshape(g, kept)
    return xp.broadcast_to(g, shape)


def device_of(x: Any) -> Any:
    return array_api_compat.device(x)
