"""One ONNX node (or a short exact composition) per op of :mod:`xpnet.functional`.

Each rule receives the op's arguments bound by name, the value the op computed on the
backend, and writes the node(s) that compute the same in ONNX at the export's opset. Ops
with no ONNX form (the losses, training-mode batch norm and dropout, max-pooling indices)
are errors that name the op and say what to do instead.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ... import functional as F
from ...functional._autodiff._rules import HANDLERS
from .._errors import OnnxExportError
from ._graph import ExportArray, Graph, active_graph, onnx_type
from ._namespace import reshape

__all__: list[str] = []

Rule = Callable[[Graph, dict[str, Any], Any], Any]
_RULES: dict[Callable[..., Any], tuple[Rule, inspect.Signature]] = {}


def _rule(*ops: Callable[..., Any]) -> Callable[[Rule], Rule]:
    def register(rule: Rule) -> Rule:
        for op in ops:
            _RULES[op] = (rule, inspect.signature(op))
        return rule

    return register


def _handle(
    op: Callable[..., Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A primitive called on a traced array: compute it on the backend, write its node."""
    entry = _RULES.get(op)
    name = getattr(fn, "__name__", repr(fn))
    if entry is None:
        raise OnnxExportError(
            f"{name} is not exported to ONNX (it is not part of a model's inference graph, "
            "or has no ONNX form); export the module that computes the predictions"
        )
    rule, signature = entry
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    raw = {k: (v._value if type(v) is ExportArray else v) for k, v in arguments.items()}
    value = fn(**raw)
    graph = active_graph()
    return rule(graph, arguments, value)


HANDLERS[ExportArray] = _handle


def _name(graph: Graph, value: Any, like: Any = None) -> str:
    return graph.name_of(value, None if like is None else like.dtype)


def _input(arguments: dict[str, Any]) -> ExportArray:
    x = arguments["input"]
    if type(x) is not ExportArray:
        raise OnnxExportError(
            "an op's input is a constant while its weights depend on the model's input; "
            "exporting that is not supported"
        )
    return x


def _tuple(value: Any, rank: int) -> list[int]:
    if isinstance(value, int):
        return [int(value)] * rank
    values = [int(v) for v in value]
    return values * rank if len(values) == 1 else values


def _out(graph: Graph, value: Any, name: str, x: ExportArray) -> ExportArray:
    """The result of a layer that keeps its input's batch axis."""
    return graph.wrap(value, name, x.batch_axis, x.lost)


def _unary(op_type: str, **attributes: Any) -> Rule:
    def rule(graph: Graph, a: dict[str, Any], value: Any) -> Any:
        x = _input(a)
        return _out(graph, value, graph.one(op_type, [x.name], **attributes), x)

    return rule


# -------------------------------------------------------------------------- convolutions


def _weighted_inputs(graph: Graph, x: ExportArray, weight: Any, bias: Any) -> list[str]:
    """A layer's inputs: ``x``, its weight, and its bias where it has one."""
    return [x.name, _name(graph, weight, x)] + ([_name(graph, bias, x)] if bias is not None else [])


@_rule(F.conv1d, F.conv2d, F.conv3d)
def _conv(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x, weight, bias = _input(a), a["weight"], a["bias"]
    rank = x.ndim - 2
    kernel = [int(n) for n in weight.shape[2:]]
    dilations = _tuple(a["dilation"], rank)
    padding = a["padding"]
    if padding == "valid":
        begins = ends = [0] * rank
    elif padding == "same":  # torch puts the odd row at the end
        totals = [d * (k - 1) for d, k in zip(dilations, kernel, strict=True)]
        begins = [t // 2 for t in totals]
        ends = [t - b for t, b in zip(totals, begins, strict=True)]
    else:
        begins = ends = _tuple(padding, rank)
    out = graph.one(
        "Conv",
        _weighted_inputs(graph, x, weight, bias),
        kernel_shape=kernel,
        strides=_tuple(a["stride"], rank),
        pads=[*begins, *ends],
        dilations=dilations,
        group=int(a["groups"]),
    )
    return _out(graph, value, out, x)


@_rule(F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
def _conv_transpose(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x, weight, bias = _input(a), a["weight"], a["bias"]
    rank = x.ndim - 2
    pads = _tuple(a["padding"], rank)
    out = graph.one(
        "ConvTranspose",
        _weighted_inputs(graph, x, weight, bias),
        kernel_shape=[int(n) for n in weight.shape[2:]],
        strides=_tuple(a["stride"], rank),
        pads=pads + pads,
        output_padding=_tuple(a["output_padding"], rank),
        dilations=_tuple(a["dilation"], rank),
        group=int(a["groups"]),
    )
    return _out(graph, value, out, x)


# ------------------------------------------------------------------------------- pooling


def _window(a: dict[str, Any], rank: int) -> tuple[list[int], list[int], list[int]]:
    kernel = _tuple(a["kernel_size"], rank)
    given = a["stride"]
    empty = isinstance(given, tuple | list) and not given  # torch's "as the kernel", too
    stride = kernel if given is None or empty else _tuple(given, rank)
    return kernel, stride, _tuple(a["padding"], rank)


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
    x = _input(a)
    if a["return_indices"]:
        raise OnnxExportError(
            "max pooling with return_indices=True: ONNX's indices count over the whole "
            "tensor, not per plane as torch's; export the pooled values only"
        )
    rank = x.ndim - 2
    kernel, stride, begins = _window(a, rank)
    dilation = _tuple(a["dilation"], rank)
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
    return _out(graph, value, graph.one("MaxPool", [name], **attributes), x)


_rule(F.max_pool1d, F.max_pool2d, F.max_pool3d)(_max_pool)


@_rule(F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)
def _avg_pool(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
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
        return _out(graph, value, out, x)
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
    return _out(graph, value, graph.one("Mul", [mean, scale]), x)


def _adaptive(kind: str) -> Rule:
    def rule(graph: Graph, a: dict[str, Any], value: Any) -> Any:
        x = _input(a)
        if a.get("return_indices"):
            raise OnnxExportError("adaptive max pooling with return_indices=True is not exported")
        sizes = [int(n) for n in x.shape[2:]]
        outs = [int(n) for n in value.shape[2:]]
        pool, reduce = ("AveragePool", "ReduceMean") if kind == "avg" else ("MaxPool", "ReduceMax")
        if all(o == 1 for o in outs):
            name = graph.one("GlobalAveragePool" if kind == "avg" else "GlobalMaxPool", [x.name])
            return _out(graph, value, name, x)
        if all(n % o == 0 for n, o in zip(sizes, outs, strict=True)):
            kernel = [n // o for n, o in zip(sizes, outs, strict=True)]
            name = graph.one(pool, [x.name], kernel_shape=kernel, strides=kernel)
            return _out(graph, value, name, x)
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
        return _out(graph, value, name, x)

    return rule


_rule(F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)(_adaptive("avg"))
_rule(F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)(_adaptive("max"))


# ------------------------------------------------------------------------- normalisation


def _filled(graph: Graph, given: Any, fill: float, size: int, like: ExportArray) -> str:
    """``given``'s name, or a constant vector of ``fill`` where it is ``None``."""
    if given is not None:
        return _name(graph, given, like)
    return graph.constant(np.full((size,), fill), like.dtype)


def _moments(graph: Graph, x: str, axes: list[int], eps: float, dtype: Any) -> str:
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` (biased variance, as torch)."""
    centred = graph.one("Sub", [x, graph.reduce("ReduceMean", x, axes)])
    var = graph.reduce("ReduceMean", graph.one("Mul", [centred, centred]), axes)
    std = graph.one("Sqrt", [graph.one("Add", [var, graph.scalar(eps, dtype)])])
    return graph.one("Div", [centred, std])


def _per_channel(graph: Graph, name: str, x: ExportArray, op_type: str, given: Any) -> str:
    """``name`` times (or plus) a per-channel vector, shaped to broadcast over ``x``."""
    if given is None:
        return name
    vector = _name(graph, given, x)
    shaped = graph.one("Reshape", [vector, graph.ints([-1] + [1] * (x.ndim - 2))])
    return graph.one(op_type, [name, shaped])


@_rule(F.batch_norm)
def _batch_norm(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    """``batch_norm`` returns ``(y, running_mean, running_var)``; the statistics pass on."""
    x = _input(a)
    value, *statistics = value
    tracked = a["running_mean"] is not None and a["running_var"] is not None
    if a["training"] and tracked:  # would update the statistics
        raise OnnxExportError(
            "batch_norm with training=True: export the model in evaluation mode (its "
            "running statistics); xpnet.onnx.export calls model.eval() for you"
        )
    channels = int(x.shape[1])
    if not tracked:  # normalised by the batch's own statistics
        axes = [0, *range(2, x.ndim)]
        name = _moments(graph, x.name, axes, float(a["eps"]), x.dtype)
        name = _per_channel(graph, name, x, "Mul", a["weight"])
        name = _per_channel(graph, name, x, "Add", a["bias"])
        return (_out(graph, value, name, x), *statistics)
    inputs = [
        x.name,
        _filled(graph, a["weight"], 1.0, channels, x),
        _filled(graph, a["bias"], 0.0, channels, x),
        _name(graph, a["running_mean"], x),
        _name(graph, a["running_var"], x),
    ]
    out = graph.one("BatchNormalization", inputs, epsilon=float(a["eps"]))
    return (_out(graph, value, out, x), *statistics)


@_rule(F.instance_norm)
def _instance_norm(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    channels = int(x.shape[1])
    eps = float(a["eps"])
    if not a["use_input_stats"]:
        inputs = [
            x.name,
            _filled(graph, a["weight"], 1.0, channels, x),
            _filled(graph, a["bias"], 0.0, channels, x),
            _name(graph, a["running_mean"], x),
            _name(graph, a["running_var"], x),
        ]
        return _out(graph, value, graph.one("BatchNormalization", inputs, epsilon=eps), x)
    inputs = [
        x.name,
        _filled(graph, a["weight"], 1.0, channels, x),
        _filled(graph, a["bias"], 0.0, channels, x),
    ]
    return _out(graph, value, graph.one("InstanceNormalization", inputs, epsilon=eps), x)


@_rule(F.group_norm)
def _group_norm(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    groups, channels, eps = int(a["num_groups"]), int(x.shape[1]), float(a["eps"])
    if graph.opset >= 21:  # per-channel scale and bias since opset 21
        inputs = [
            x.name,
            _filled(graph, a["weight"], 1.0, channels, x),
            _filled(graph, a["bias"], 0.0, channels, x),
        ]
        out = graph.one("GroupNormalization", inputs, num_groups=groups, epsilon=eps)
        return _out(graph, value, out, x)
    # Earlier: an instance norm over (N, groups, rest), then the per-channel affine.
    grouped = graph.one("Reshape", [x.name, graph.ints([0, groups, -1])])
    ones = graph.constant(np.ones(groups), x.dtype)
    zeros = graph.constant(np.zeros(groups), x.dtype)
    normed = graph.one("InstanceNormalization", [grouped, ones, zeros], epsilon=eps)
    name = graph.one("Reshape", [normed, graph.shape_of(x.name)])
    name = _per_channel(graph, name, x, "Mul", a["weight"])
    return _out(graph, value, _per_channel(graph, name, x, "Add", a["bias"]), x)


@_rule(F.layer_norm)
def _layer_norm(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    shape = a["normalized_shape"]
    count = 1 if isinstance(shape, int) else len(shape)
    axis = x.ndim - count
    eps = float(a["eps"])
    weight, bias = a["weight"], a["bias"]
    if graph.opset >= 17:
        sizes = [int(n) for n in x.shape[axis:]]
        scale = (
            _name(graph, weight, x)
            if weight is not None
            else graph.constant(np.ones(sizes), x.dtype)
        )
        inputs = [x.name, scale] + ([_name(graph, bias, x)] if bias is not None else [])
        out = graph.one("LayerNormalization", inputs, axis=axis, epsilon=eps)
        return _out(graph, value, out, x)
    name = _moments(graph, x.name, list(range(axis, x.ndim)), eps, x.dtype)
    if weight is not None:
        name = graph.one("Mul", [name, _name(graph, weight, x)])
    if bias is not None:
        name = graph.one("Add", [name, _name(graph, bias, x)])
    return _out(graph, value, name, x)


# --------------------------------------------------------------------------- activations

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

_rule(F.relu)(_unary("Relu"))
_rule(F.sigmoid)(_unary("Sigmoid"))
_rule(F.tanh)(_unary("Tanh"))
_rule(F.selu)(_unary("Selu", alpha=_SELU_ALPHA, gamma=_SELU_SCALE))
_rule(F.hardsigmoid)(_unary("HardSigmoid", alpha=1.0 / 6.0, beta=0.5))


@_rule(F.leaky_relu)
def _leaky_relu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    out = graph.one("LeakyRelu", [x.name], alpha=float(a["negative_slope"]))
    return _out(graph, value, out, x)


@_rule(F.elu)
def _elu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    return _out(graph, value, graph.one("Elu", [x.name], alpha=float(a["alpha"])), x)


@_rule(F.relu6)
def _relu6(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    bounds = [graph.scalar(0.0, x.dtype), graph.scalar(6.0, x.dtype)]
    return _out(graph, value, graph.one("Clip", [x.name, *bounds]), x)


@_rule(F.silu)
def _silu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    return _out(graph, value, graph.one("Mul", [x.name, graph.one("Sigmoid", [x.name])]), x)


@_rule(F.hardswish)
def _hardswish(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    if graph.opset >= 14:
        return _out(graph, value, graph.one("HardSwish", [x.name]), x)
    gate = graph.one("HardSigmoid", [x.name], alpha=1.0 / 6.0, beta=0.5)
    return _out(graph, value, graph.one("Mul", [x.name, gate]), x)


def _softplus_name(graph: Graph, x: ExportArray, beta: float, threshold: float) -> str:
    """torch's softplus: ``log(1 + exp(beta x)) / beta``, and ``x`` where ``beta x`` is
    above ``threshold``."""
    scaled = x.name if beta == 1.0 else graph.one("Mul", [x.name, graph.scalar(beta, x.dtype)])
    soft = graph.one("Softplus", [scaled])
    if beta != 1.0:
        soft = graph.one("Div", [soft, graph.scalar(beta, x.dtype)])
    above = graph.one("Greater", [scaled, graph.scalar(threshold, x.dtype)])
    return graph.one("Where", [above, x.name, soft])


@_rule(F.softplus)
def _softplus(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    name = _softplus_name(graph, x, float(a["beta"]), float(a["threshold"]))
    return _out(graph, value, name, x)


@_rule(F.mish)
def _mish(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    if graph.opset >= 18:
        return _out(graph, value, graph.one("Mish", [x.name]), x)
    gate = graph.one("Tanh", [_softplus_name(graph, x, 1.0, 20.0)])
    return _out(graph, value, graph.one("Mul", [x.name, gate]), x)


@_rule(F.gelu)
def _gelu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    approximate = str(a["approximate"])
    if graph.opset >= 20:
        return _out(graph, value, graph.one("Gelu", [x.name], approximate=approximate), x)
    dtype = x.dtype
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = graph.one("Mul", [x.name, graph.one("Mul", [x.name, x.name])])
        inner = graph.one("Add", [x.name, graph.one("Mul", [cube, graph.scalar(0.044715, dtype)])])
        core = graph.one("Mul", [inner, graph.scalar(math.sqrt(2.0 / math.pi), dtype)])
        gate = graph.one("Tanh", [core])
    else:  # 0.5 x (1 + erf(x / sqrt 2))
        gate = graph.one("Erf", [graph.one("Mul", [x.name, graph.scalar(0.5**0.5, dtype)])])
    half = graph.one("Mul", [x.name, graph.scalar(0.5, dtype)])
    one = graph.scalar(1.0, dtype)
    return _out(graph, value, graph.one("Mul", [half, graph.one("Add", [gate, one])]), x)


@_rule(F.prelu)
def _prelu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    slope = _name(graph, a["weight"], x)
    if x.ndim > 2:  # ONNX broadcasts the slope from the right: (C, 1, ..., 1)
        slope = graph.one("Reshape", [slope, graph.ints([-1] + [1] * (x.ndim - 2))])
    return _out(graph, value, graph.one("PRelu", [x.name, slope]), x)


def _softmax_rule(op_type: str) -> Rule:
    def rule(graph: Graph, a: dict[str, Any], value: Any) -> Any:
        x = _input(a)
        name = x.name
        if a["dtype"] is not None:
            name = graph.one("Cast", [name], to=onnx_type(graph.onnx, a["dtype"]))
        axis = int(a["dim"]) % x.ndim
        return _out(graph, value, graph.one(op_type, [name], axis=axis), x)

    return rule


_rule(F.softmax)(_softmax_rule("Softmax"))
_rule(F.log_softmax)(_softmax_rule("LogSoftmax"))


# --------------------------------------------------------------------- dense and shaping


@_rule(F.linear)
def _linear(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x, weight, bias = _input(a), a["weight"], a["bias"]
    if x.ndim == 2:
        inputs = _weighted_inputs(graph, x, weight, bias)
        return _out(graph, value, graph.one("Gemm", inputs, transB=1), x)
    w = _name(graph, weight, x)
    name = graph.one("MatMul", [x.name, graph.one("Transpose", [w], perm=[1, 0])])
    if bias is not None:
        name = graph.one("Add", [name, _name(graph, bias, x)])
    batch = x.batch_axis if x.batch_axis is not None and x.batch_axis < x.ndim - 1 else None
    return graph.wrap(value, name, batch, x.lost)


@_rule(F.flatten)
def _flatten(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = int(a["start_dim"]) % x.ndim, int(a["end_dim"]) % x.ndim
    if start == 1 and end == x.ndim - 1:
        return _out(graph, value, graph.one("Flatten", [x.name], axis=1), x)
    shape = list(x.shape)
    return reshape(x, (*shape[:start], -1, *shape[end + 1 :]))


@_rule(F.dropout, F.dropout1d, F.dropout2d, F.dropout3d)
def _dropout(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    if a["training"] and float(a["p"]) > 0:
        raise OnnxExportError(
            "dropout with training=True: export the model in evaluation mode, where dropout "
            "passes its input through (xpnet.onnx.export calls model.eval() for you)"
        )
    return x


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


@_rule(F.pad)
def _pad(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    pairs = [int(p) for p in a["pad"]]
    begins, ends = [0] * x.ndim, [0] * x.ndim
    for i in range(len(pairs) // 2):  # torch's order: the last axis first
        begins[x.ndim - 1 - i], ends[x.ndim - 1 - i] = pairs[2 * i], pairs[2 * i + 1]
    mode = a["mode"]
    if mode == "circular" and graph.opset < 19:
        return _circular(graph, x, begins, ends, value)
    inputs = [x.name, graph.ints(begins + ends)]
    if mode == "constant":
        inputs.append(graph.scalar(float(a["value"] or 0.0), x.dtype))
    onnx_mode = "wrap" if mode == "circular" else _PAD_MODES[mode]
    return _out(graph, value, graph.one("Pad", inputs, mode=onnx_mode), x)


def _circular(
    graph: Graph, x: ExportArray, begins: list[int], ends: list[int], value: Any
) -> ExportArray:
    """Circular padding before ONNX's ``wrap`` (opset 19): the other end's rows, concatenated."""
    name = x.name
    for axis in range(x.ndim):
        before, after = begins[axis], ends[axis]
        if not before and not after:
            continue
        parts = []
        if before:
            start = graph.ints([-before])
            end = graph.ints([np.iinfo(np.int64).max])
            parts.append(graph.one("Slice", [name, start, end, graph.ints([axis])]))
        parts.append(name)
        if after:
            parts.append(
                graph.one("Slice", [name, graph.ints([0]), graph.ints([after]), graph.ints([axis])])
            )
        name = graph.one("Concat", parts, axis=axis)
    return _out(graph, value, name, x)


# ------------------------------------------------------------------------------ resizing


@_rule(F.interpolate)
def _interpolate(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    if a["antialias"]:
        raise OnnxExportError("interpolate with antialias=True is not exported")
    mode = a["mode"]
    rank = x.ndim - 2
    outs = [int(n) for n in value.shape[2:]]
    if mode == "area":
        return _adaptive("avg")(graph, {"input": x}, value)
    attributes: dict[str, Any] = {}
    if mode in ("nearest", "nearest-exact"):
        attributes["mode"] = "nearest"
        if mode == "nearest":
            attributes.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            attributes.update(
                coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil"
            )
    else:
        attributes["mode"] = "linear"
        attributes["coordinate_transformation_mode"] = (
            "align_corners" if a["align_corners"] else "pytorch_half_pixel"
        )
    factor = a["scale_factor"]
    sizes_in = [int(n) for n in x.shape[2:]]
    factors = []
    if factor is not None:
        factors = [float(factor)] * rank if isinstance(factor, int | float) else list(factor)
    # ONNX sizes its output as floor(n * float32(scale)); where that differs from torch's
    # double-precision floor, n * scale is a whole number, and the sizes form maps alike.
    exact = factor is None or all(
        math.floor(n * float(np.float32(f))) == o
        for n, f, o in zip(sizes_in, factors, outs, strict=True)
    )
    if factor is not None and not a["recompute_scale_factor"] and exact:
        scales = graph.constant(np.asarray([1.0, 1.0, *factors], dtype=np.float32))
        inputs = [x.name, "", scales]
    else:  # the output size, after the input's own batch and channels
        sizes = graph.one("Concat", [graph.shape_of(x.name, 0, 2), graph.ints(outs)], axis=0)
        inputs = [x.name, "", "", sizes]
    return _out(graph, value, graph.one("Resize", inputs, **attributes), x)


@_rule(F.pixel_shuffle)
def _pixel_shuffle(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    if x.ndim != 4:
        raise OnnxExportError(f"pixel_shuffle of a {x.ndim}-D input: ONNX's takes (N, C, H, W)")
    r = int(a["upscale_factor"])
    return _out(graph, value, graph.one("DepthToSpace", [x.name], blocksize=r, mode="CRD"), x)


@_rule(F.pixel_unshuffle)
def _pixel_unshuffle(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = _input(a)
    if x.ndim != 4 or x.batch_axis not in (0, None):
        raise OnnxExportError(f"pixel_unshuffle of a {x.ndim}-D input: export takes (N, C, H, W)")
    r = int(a["downscale_factor"])
    _, c, h, w = (int(n) for n in x.shape)
    first = 0 if x.batch_axis == 0 else int(x.shape[0])
    name = graph.one("Reshape", [x.name, graph.ints([first, c, h // r, r, w // r, r])])
    name = graph.one("Transpose", [name], perm=[0, 1, 3, 5, 2, 4])
    name = graph.one("Reshape", [name, graph.ints([first, c * r * r, h // r, w // r])])
    return _out(graph, value, name, x)
