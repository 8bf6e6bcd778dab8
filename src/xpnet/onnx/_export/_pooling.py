"""Export rules of the pooling ops: ONNX's ``MaxPool``, ``AveragePool`` and global pools,
with end pads or an explicit divisor where torch's ceil mode and divisors differ from
ONNX's, and adaptive pools of unequal windows as slices and reductions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import functional as F
from .._errors import OnnxExportError
from ._graph import Graph
from ._rules import Rule, per_axis, rule, traced_input, wrapped

__all__ = ["adaptive_rule"]


def _window(a: dict[str, Any], rank: int) -> tuple[list[int], list[int], list[int]]:
    kernel = per_axis(a["kernel_size"], rank)
    given = a["stride"]
    empty = isinstance(given, tuple | list) and not given  # torch's "as the kernel", too
    stride = kernel if given is None or empty else per_axis(given, rank)
    return kernel, stride, per_axis(a["padding"], rank)


def _end_pads(
    sizes: list[int], outs: list[int], kernel: list[int], stride: list[int],
    begins: list[int], dilation: list[int],
) -> list[int]:  # fmt: skip
    """End pads that make ONNX's floor-mode window count give torch's output size: the
    begin pads where it does; more where torch's ceil mode adds a last window (one that
    starts inside the input or its left padding)."""
    ends = []
    for n, o, k, s, b, d in zip(sizes, outs, kernel, stride, begins, dilation, strict=True):
        extent = d * (k - 1) + 1
        floor_count = (n + 2 * b - extent) // s + 1
        ends.append(b if floor_count == o else (o - 1) * s + extent - n - b)
    return ends


def _max_pool(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    if a["return_indices"]:
        raise OnnxExportError(
            "max pooling with return_indices=True: ONNX's indices count over the whole "
            "tensor, not per plane as torch's; export the pooled values only"
        )
    rank = x.ndim - 2
    kernel, stride, begins = _window(a, rank)
    dilation = per_axis(a["dilation"], rank)
    sizes = [int(n) for n in x.shape[2:]]
    outs = [int(n) for n in value.shape[2:]]
    ends = _end_pads(sizes, outs, kernel, stride, begins, dilation)
    name = x.name
    if any(p >= k for p, k in zip(begins + ends, kernel + kernel, strict=True)):
        # ONNX runtimes take pads below the kernel size only: pad with -inf explicitly.
        pads = [0, 0, *begins, 0, 0, *ends]
        fill = graph.scalar(-np.inf, x.dtype)
        name = graph.one("Pad", [name, graph.ints(pads), fill], mode="constant")
        begins, ends = [0] * rank, [0] * rank
    attributes: dict[str, Any] = {"kernel_shape": kernel, "strides": stride,
                                  "pads": begins + ends}  # fmt: skip
    if any(d != 1 for d in dilation):
        attributes["dilations"] = dilation
    return wrapped(graph, value, graph.one("MaxPool", [name], **attributes), x)


rule(F.max_pool1d, F.max_pool2d, F.max_pool3d)(_max_pool)


@rule(F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)
def _avg_pool(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    rank = x.ndim - 2
    kernel, stride, begins = _window(a, rank)
    sizes = [int(n) for n in x.shape[2:]]
    outs = [int(n) for n in value.shape[2:]]
    ones = [1] * rank
    ends = _end_pads(sizes, outs, kernel, stride, begins, ones)
    override = a.get("divisor_override")
    include = bool(a["count_include_pad"])
    if ends == begins and override is None:  # ONNX's own divisor is torch's
        out = graph.one("AveragePool", [x.name], kernel_shape=kernel, strides=stride,
                        pads=begins + ends, count_include_pad=int(include))  # fmt: skip
        return wrapped(graph, value, out, x)
    # Otherwise: window sums over zero padding, divided by torch's divisor per position.
    padded = x.name
    if any(begins) or any(ends):
        pads = [0, 0, *begins, 0, 0, *ends]
        padded = graph.one("Pad", [x.name, graph.ints(pads)], mode="constant")
    mean = graph.one("AveragePool", [padded], kernel_shape=kernel, strides=stride)
    divisor = np.ones(outs, dtype=np.float64)
    for axis, (n, o, k, s, b) in enumerate(zip(sizes, outs, kernel, stride, begins, strict=True)):
        starts = np.arange(o) * s
        stops = np.minimum(starts + k, n + 2 * b)  # torch clips at the padded input
        # Without the padding: only the input's own entries count.
        counts = stops - starts if include else np.minimum(stops, n + b) - np.maximum(starts, b)
        shape = [1] * rank
        shape[axis] = o
        divisor = divisor * counts.reshape(shape)
    if override is not None:
        divisor = np.full(outs, float(override))
    scale = graph.constant(math.prod(kernel) / divisor, x.dtype)
    return wrapped(graph, value, graph.one("Mul", [mean, scale]), x)


def adaptive_rule(kind: str) -> Rule:
    def export(graph: Graph, a: dict[str, Any], value: Any) -> Any:
        x = traced_input(a)
        if a.get("return_indices"):
            raise OnnxExportError("adaptive max pooling with return_indices=True is not exported")
        sizes = [int(n) for n in x.shape[2:]]
        outs = [int(n) for n in value.shape[2:]]
        pool, reduce = ("AveragePool", "ReduceMean") if kind == "avg" else ("MaxPool", "ReduceMax")
        if all(o == 1 for o in outs):
            name = graph.one("GlobalAveragePool" if kind == "avg" else "GlobalMaxPool", [x.name])
            return wrapped(graph, value, name, x)
        if all(n % o == 0 for n, o in zip(sizes, outs, strict=True)):
            kernel = [n // o for n, o in zip(sizes, outs, strict=True)]
            name = graph.one(pool, [x.name], kernel_shape=kernel, strides=kernel)
            return wrapped(graph, value, name, x)
        # Windows of unequal sizes: one axis at a time (a window's mean or max is the mean or
        # max over one axis of those over the other), each output cell a slice.
        name = x.name
        for axis, (n, o) in enumerate(zip(sizes, outs, strict=True)):
            if n == o:
                continue
            cells = []
            for i in range(o):
                start, stop = (i * n) // o, -(-((i + 1) * n) // o)
                piece = graph.one("Slice", [name, graph.ints([start]), graph.ints([stop]),
                                            graph.ints([axis + 2])])  # fmt: skip
                cells.append(graph.reduce(reduce, piece, [axis + 2], keepdims=True))
            name = graph.one("Concat", cells, axis=axis + 2)
        return wrapped(graph, value, name, x)

    return export


rule(F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)(adaptive_rule("avg"))
rule(F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)(adaptive_rule("max"))
