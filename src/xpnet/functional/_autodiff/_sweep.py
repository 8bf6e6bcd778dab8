"""The reverse sweep: from the outputs back through the recorded nodes to the leaves.

Nodes are numbered in creation order, so sweeping them from the highest number down visits
every node after all the nodes that used it: the cotangent of a node is complete (summed
over every use) before its pullback runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from ._tape import DifferentiationError, Node, TrackedArray

__all__ = ["backward", "observe_pullbacks"]


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape)


def _conform(xp: Any, grad: Any, shape: tuple[int, ...], dtype: Any, node: Node) -> Any:
    """A cotangent arriving at an output of ``shape`` and ``dtype``: checked, and cast to
    that dtype as torch's autograd casts it."""
    if _shape(grad) != shape:
        raise RuntimeError(
            f"xpnet internal error: the pullback of a step using {node.name} returned a "
            f"cotangent of shape {_shape(grad)} for an output of shape {shape}"
        )
    if grad.dtype != dtype:
        grad = xp.astype(grad, dtype)
    return grad


def _reachable(roots: Iterable[Node]) -> list[Node]:
    seen: dict[int, Node] = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(parent for parent, _ in node.parents if id(parent) not in seen)
    return sorted(seen.values(), key=lambda n: n.order, reverse=True)


#: Called around each node's pullback during the sweep (``xpnet bench --count`` labels
#: its counts with it); ``None`` normally.
_observer: ContextVar[Callable[[Node], Any] | None] = ContextVar("xpnet_observer", default=None)


@contextlib.contextmanager
def observe_pullbacks(around: Callable[[Node], Any]) -> Iterator[None]:
    """Inside the block, every pullback the sweep runs runs inside ``around(node)`` (a
    context manager), e.g. to count what each step's backward costs."""
    token = _observer.set(around)
    try:
        yield
    finally:
        _observer.reset(token)


def backward(
    roots: Sequence[tuple[TrackedArray, Any]], xp: Any, *, keep: Sequence[Node] = ()
) -> dict[Node, Any]:
    """Sweep the graph from ``roots`` back to its leaves.

    Parameters
    ----------
    roots : sequence of (TrackedArray, cotangent)
        The outputs and the cotangents they receive (backend arrays).
    xp : namespace
        The backend's namespace (for casts).
    keep : sequence of Node
        Nodes whose summed cotangent the caller wants besides the leaves'.

    Returns
    -------
    dict
        Leaf node (and each node of ``keep`` that received one) -> its cotangent (output
        0). Leaves that no path reaches are absent.

    Notes
    -----
    Each node's pullback is released once it has run, so the memory it held (the forward
    values it saved) is freed as the sweep goes; a graph is swept once.
    """
    pending: dict[Node, list[Any]] = {}
    for array, cotangent in roots:
        node = array._node
        if node is None:
            continue
        shape, dtype = node.outputs[array._index]
        cotangent = _conform(xp, cotangent, shape, dtype, node)
        slots = pending.setdefault(node, [None] * len(node.outputs))
        index = array._index
        slots[index] = cotangent if slots[index] is None else slots[index] + cotangent
    wanted = {id(n) for n in keep}
    found: dict[Node, Any] = {}
    observer = _observer.get()
    for node in _reachable(pending):
        if node not in pending:
            continue
        slots = pending.pop(node)
        if not node.parents:
            found[node] = slots[0]
            continue
        if id(node) in wanted:
            found[node] = slots[0]
        pullback = node.pullback
        if pullback is None:
            raise DifferentiationError(
                f"the step {node.name} was already differentiated: a recorded computation "
                "is swept once; run the function again to differentiate it again"
            )
        node.pullback = None
        cotangent = slots[0] if len(slots) == 1 else tuple(slots)
        if observer is None:
            grads = pullback(cotangent)
        else:
            with observer(node):
                grads = pullback(cotangent)
        for (parent, index), grad in zip(node.parents, grads, strict=True):
            if grad is None:
                continue
            shape, dtype = parent.outputs[index]
            grad = _conform(xp, grad, shape, dtype, node)
            parent_slots = pending.get(parent)
            if parent_slots is None:
                parent_slots = pending[parent] = [None] * len(parent.outputs)
            current = parent_slots[index]
            parent_slots[index] = grad if current is None else current + grad
    return found
