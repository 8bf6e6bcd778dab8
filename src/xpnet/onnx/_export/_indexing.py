"""Shapes and indexing of traced arrays: ``Reshape`` (keeping the batch symbolic where the
trace shows it, fixing it where not), ``Expand`` targets, and basic and integer-array
indexing as ``Slice``/``Squeeze``/``Unsqueeze`` and ``Gather``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import OnnxExportError
from ._graph import (
    INT64_MAX,
    INT64_MIN,
    BatchDerived,
    BatchSize,
    ExportArray,
    Graph,
    batch_related,
)

__all__ = ["getitem", "raw", "reshape", "shape_operand"]


def raw(value: Any) -> Any:
    """The backend value of a traced array (anything else as it is)."""
    return value._value if type(value) is ExportArray else value


def shape_operand(graph: Graph, x: ExportArray, shape: Sequence[int], what: str) -> str:
    """A shape input for ``Expand``: the batch entry read from an input's shape."""
    sizes = list(shape)
    if any(type(n) is BatchDerived for n in sizes):
        graph.fix_batch(f"{what} to a size computed from the batch size")
    elif not any(type(n) is BatchSize for n in sizes) and (x.batch_axis is not None or x.lost):
        graph.fix_batch(f"{what} to a shape given as numbers")
    batch = graph.batch_size_name() if any(type(n) is BatchSize for n in sizes) else None
    if batch is None or graph.fixed_batch:
        return graph.ints([int(n) for n in sizes])
    parts = [batch if type(n) is BatchSize else graph.ints([int(n)]) for n in sizes]
    return graph.one("Concat", parts, axis=0)


def reshape(x: ExportArray, shape: Sequence[int]) -> ExportArray:
    """``Reshape``, keeping the batch symbolic where ``shape`` carries it; fixing it where
    a size in ``shape`` depends on the batch in a way the graph cannot follow."""
    graph = x.graph
    sizes = [shape] if isinstance(shape, int) else list(shape)
    value = graph.xp.reshape(x._value, tuple(int(n) for n in sizes))
    target = [int(n) for n in sizes]
    marked = [i for i, n in enumerate(sizes) if type(n) is BatchSize]
    tied = x.batch_axis is not None or x.lost

    def written(names: str, batch: int | None, lost: bool = False) -> ExportArray:
        return graph.wrap(value, graph.one("Reshape", [x.name, names]), batch, lost)

    if any(type(n) is BatchDerived for n in sizes) or len(marked) > 1:
        graph.fix_batch("a reshape to a size computed from the batch size")
        return written(graph.ints(target), None)
    if marked:
        (at,) = marked
        if x.batch_axis == at and -1 not in target:
            target[at] = 0  # ONNX: this dimension as the input's
        elif -1 not in target:
            target[at] = -1
        else:  # the batch and another inferred size: the batch read from an input's shape
            batch_name = graph.batch_size_name()
            if batch_name is None:
                graph.fix_batch("a reshape with the batch size and -1")
                return written(graph.ints(target), at)
            parts = ([graph.ints(target[:at])] if at else []) + [batch_name]
            if at + 1 < len(target):
                parts.append(graph.ints(target[at + 1 :]))
            return written(graph.one("Concat", parts, axis=0), at)
        return written(graph.ints(target), at)
    if not tied:
        return written(graph.ints(target), None)
    if -1 not in target or (x.batch_axis is not None and _batch_size(x) in target):
        # A size that is the batch as a plain number (int(x.shape[0])) would stay that
        # number in the graph.
        graph.fix_batch("a reshape to a shape given as numbers")
        return written(graph.ints(target), None)
    if x.lost and not _merges_leading(x, target):
        graph.fix_batch("a reshape of an array whose size depends on the batch")
        return written(graph.ints(target), None)
    # -1 absorbs the batch: right at any batch size, the other sizes being the input's own.
    batch = _kept_leading(x, target)
    return written(graph.ints(target), batch, lost=batch is None)


def _merges_leading(x: ExportArray, target: list[int]) -> bool:
    """Whether ``target`` is ``(-1, *x.shape[k:])``: leading axes merged, the rest kept."""
    rest = [int(n) for n in x._value.shape]
    return (
        bool(target)
        and target[0] == -1
        and any(target[1:] == rest[k:] for k in range(len(rest) + 1))
    )


def _batch_size(x: ExportArray) -> int:
    assert x.batch_axis is not None
    return int(x._value.shape[x.batch_axis])


def _kept_leading(x: ExportArray, target: list[int]) -> int | None:
    """The batch axis of ``reshape(x, target)`` when ``target`` starts with ``-1`` that
    merges only the batch axis (``(-1, C, H, W)`` of an ``(N, C, H, W)``)."""
    rest = [int(n) for n in x._value.shape[1:]]
    if x.batch_axis == 0 and target and target[0] == -1 and list(target[1:]) == rest:
        return 0
    return None


def getitem(x: ExportArray, key: Any) -> ExportArray:
    """Basic indexing (ints, slices, ``None``, ``...``) as ``Slice``, ``Squeeze`` and
    ``Unsqueeze``; one integer-array index as ``Gather``."""
    graph = x.graph
    value = x._value[_raw_key(key)]
    items = list(key) if isinstance(key, tuple) else [key]
    if any(type(k) is ExportArray or hasattr(k, "shape") for k in items):
        return _gather(x, items, value)
    if items.count(Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis")
    used = sum(1 for k in items if k is not None and k is not Ellipsis)
    if Ellipsis in items:
        where = items.index(Ellipsis)
        items[where : where + 1] = [slice(None)] * (x.ndim - used)
    else:
        items += [slice(None)] * (x.ndim - used)
    starts, ends, steps, axes, dropped, inserted = [], [], [], [], [], []
    axis = 0
    out_axis = 0
    batch: int | None = None
    lost = x.lost
    for k in items:
        if k is None:
            inserted.append(out_axis)
            out_axis += 1
            continue
        if isinstance(k, slice):
            if any(batch_related(b) for b in (k.start, k.stop, k.step)):
                graph.fix_batch("a slice bound computed from the batch size")
            if k != slice(None):
                if axis == x.batch_axis:  # x[1:] has a size the batch sets; x[:2] does not
                    lost = lost or not (k.stop is not None and k.stop >= 0 and (k.start or 0) >= 0)
                step = 1 if k.step is None else int(k.step)
                start = k.start if k.start is not None else (0 if step > 0 else INT64_MAX)
                stop = k.stop if k.stop is not None else (INT64_MAX if step > 0 else INT64_MIN)
                starts.append(int(start))
                ends.append(int(stop))
                steps.append(step)
                axes.append(axis)
            elif axis == x.batch_axis:
                batch = out_axis
            axis += 1
            out_axis += 1
            continue
        position = int(k)
        if axis == x.batch_axis or (x.lost and axis == 0):
            graph.fix_batch("an entry of the batch taken by its index (a loop over the batch)")
        starts.append(position)
        ends.append(position + 1 if position != -1 else INT64_MAX)
        steps.append(1)
        axes.append(axis)
        dropped.append(axis)
        axis += 1
    name = x.name
    if axes:
        inputs = [name, graph.ints(starts), graph.ints(ends), graph.ints(axes)]
        if any(s != 1 for s in steps):
            inputs.append(graph.ints(steps))
        name = graph.one("Slice", inputs)
    if dropped:
        name = graph.squeeze(name, dropped)
    if inserted:
        name = graph.unsqueeze(name, inserted)
    return graph.wrap(value, name, batch, lost)


def _gather(x: ExportArray, items: list[Any], value: Any) -> ExportArray:
    """``x[:, ..., idx]`` with one integer array ``idx`` after full slices: ``Gather``."""
    full = slice(None)
    arrays = [i for i, k in enumerate(items) if type(k) is ExportArray or hasattr(k, "shape")]
    axis = arrays[0]
    if len(arrays) != 1 or any(k != full for k in items[:axis] + items[axis + 1 :]):
        raise OnnxExportError(
            "indexing with arrays is exported for one integer array among full slices "
            "(x[:, idx]); take the rest in steps"
        )
    index = items[axis]
    if "bool" in str(index.dtype):
        raise OnnxExportError("boolean-mask indexing has a data-dependent shape in ONNX")
    graph = x.graph
    out = graph.one("Gather", [x.name, graph.name_of(index)], axis=axis)
    batch = x.batch_axis if x.batch_axis is not None and x.batch_axis < axis else None
    return graph.wrap(value, out, batch, x.lost)


def _raw_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(raw(k) for k in key)
    return raw(key)
