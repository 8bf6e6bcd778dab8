"""One ONNX node (or a short exact composition) per op of :mod:`xpnet.functional`.

Each rule receives the op's arguments bound by name, the value the op computed on the
backend, and writes the node(s) that compute the same in ONNX at the export's opset. Ops
with no ONNX form (the losses, training-mode batch norm and dropout, max-pooling indices)
are errors that name the op and say what to do instead. The pooling rules are in
:mod:`._pooling`; the rule table and its handler in :mod:`._rules`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import functional as F
from .._errors import OnnxExportError
from ._graph import ExportArray, Graph, onnx_type
from ._indexing import reshape
from ._pooling import adaptive_rule
from ._rules import Rule, operand_name, per_axis, rule, traced_input, unary_rule, wrapped

__all__: list[str] = []

# -------------------------------------------------------------------------- convolutions


def _weighted_inputs(graph: Graph, x: ExportArray, weight: Any, bias: Any) -> list[str]:
    """A layer's inputs: ``x``, its weight, and its bias where it has one."""
    return [x.name, operand_name(graph, weight, x)] + (
        [operand_name(graph, bias, x)] if bias is not None else []
    )


@rule(F.conv1d, F.conv2d, F.conv3d)
def _conv(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x, weight, bias = traced_input(a), a["weight"], a["bias"]
    rank = x.ndim - 2
    kernel = [int(n) for n in weight.shape[2:]]
    dilations = per_axis(a["dilation"], rank)
    padding = a["padding"]
    if padding == "valid":
        begins = ends = [0] * rank
    elif padding == "same":  # torch puts the odd row at the end
        totals = [d * (k - 1) for d, k in zip(dilations, kernel, strict=True)]
        begins = [t // 2 for t in totals]
        ends = [t - b for t, b in zip(totals, begins, strict=True)]
    else:
        begins = ends = per_axis(padding, rank)
    out = graph.one(
        "Conv",
        _weighted_inputs(graph, x, weight, bias),
        kernel_shape=kernel,
        strides=per_axis(a["stride"], rank),
        pads=[*begins, *ends],
        dilations=dilations,
        group=int(a["groups"]),
    )
    return wrapped(graph, value, out, x)


@rule(F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)
def _conv_transpose(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x, weight, bias = traced_input(a), a["weight"], a["bias"]
    rank = x.ndim - 2
    pads = per_axis(a["padding"], rank)
    out = graph.one(
        "ConvTranspose",
        _weighted_inputs(graph, x, weight, bias),
        kernel_shape=[int(n) for n in weight.shape[2:]],
        strides=per_axis(a["stride"], rank),
        pads=pads + pads,
        output_padding=per_axis(a["output_padding"], rank),
        dilations=per_axis(a["dilation"], rank),
        group=int(a["groups"]),
    )
    return wrapped(graph, value, out, x)


# ------------------------------------------------------------------------- normalisation


def _filled(graph: Graph, given: Any, fill: float, size: int, like: ExportArray) -> str:
    """``given``'s name, or a constant vector of ``fill`` where it is ``None``."""
    if given is not None:
        return operand_name(graph, given, like)
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
    vector = operand_name(graph, given, x)
    shaped = graph.one("Reshape", [vector, graph.ints([-1] + [1] * (x.ndim - 2))])
    return graph.one(op_type, [name, shaped])


def _batch_normalization(
    graph: Graph, x: ExportArray, a: dict[str, Any], channels: int, eps: float
) -> str:
    """ONNX's ``BatchNormalization`` on running statistics (scale 1 and bias 0 where the
    layer has none): batch norm in eval mode, instance norm with tracked statistics."""
    inputs = [
        x.name,
        _filled(graph, a["weight"], 1.0, channels, x),
        _filled(graph, a["bias"], 0.0, channels, x),
        operand_name(graph, a["running_mean"], x),
        operand_name(graph, a["running_var"], x),
    ]
    return graph.one("BatchNormalization", inputs, epsilon=eps)


@rule(F.batch_norm)
def _batch_norm(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    """``batch_norm`` returns ``(y, running_mean, running_var)``; the statistics pass on."""
    x = traced_input(a)
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
        return (wrapped(graph, value, name, x), *statistics)
    out = _batch_normalization(graph, x, a, channels, float(a["eps"]))
    return (wrapped(graph, value, out, x), *statistics)


@rule(F.instance_norm)
def _instance_norm(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    channels = int(x.shape[1])
    eps = float(a["eps"])
    if not a["use_input_stats"]:
        return wrapped(graph, value, _batch_normalization(graph, x, a, channels, eps), x)
    inputs = [
        x.name,
        _filled(graph, a["weight"], 1.0, channels, x),
        _filled(graph, a["bias"], 0.0, channels, x),
    ]
    return wrapped(graph, value, graph.one("InstanceNormalization", inputs, epsilon=eps), x)


@rule(F.group_norm)
def _group_norm(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    groups, channels, eps = int(a["num_groups"]), int(x.shape[1]), float(a["eps"])
    if graph.opset >= 21:  # per-channel scale and bias since opset 21
        inputs = [
            x.name,
            _filled(graph, a["weight"], 1.0, channels, x),
            _filled(graph, a["bias"], 0.0, channels, x),
        ]
        out = graph.one("GroupNormalization", inputs, num_groups=groups, epsilon=eps)
        return wrapped(graph, value, out, x)
    # Earlier: an instance norm over (N, groups, rest), then the per-channel affine.
    grouped = graph.one("Reshape", [x.name, graph.ints([0, groups, -1])])
    ones = graph.constant(np.ones(groups), x.dtype)
    zeros = graph.constant(np.zeros(groups), x.dtype)
    normed = graph.one("InstanceNormalization", [grouped, ones, zeros], epsilon=eps)
    name = graph.one("Reshape", [normed, graph.shape_of(x.name)])
    name = _per_channel(graph, name, x, "Mul", a["weight"])
    return wrapped(graph, value, _per_channel(graph, name, x, "Add", a["bias"]), x)


@rule(F.layer_norm)
def _layer_norm(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    shape = a["normalized_shape"]
    count = 1 if isinstance(shape, int) else len(shape)
    axis = x.ndim - count
    eps = float(a["eps"])
    weight, bias = a["weight"], a["bias"]
    if graph.opset >= 17:
        sizes = [int(n) for n in x.shape[axis:]]
        scale = (
            operand_name(graph, weight, x)
            if weight is not None
            else graph.constant(np.ones(sizes), x.dtype)
        )
        inputs = [x.name, scale] + ([operand_name(graph, bias, x)] if bias is not None else [])
        out = graph.one("LayerNormalization", inputs, axis=axis, epsilon=eps)
        return wrapped(graph, value, out, x)
    name = _moments(graph, x.name, list(range(axis, x.ndim)), eps, x.dtype)
    if weight is not None:
        name = graph.one("Mul", [name, operand_name(graph, weight, x)])
    if bias is not None:
        name = graph.one("Add", [name, operand_name(graph, bias, x)])
    return wrapped(graph, value, name, x)


# --------------------------------------------------------------------------- activations

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

rule(F.relu)(unary_rule("Relu"))
rule(F.sigmoid)(unary_rule("Sigmoid"))
rule(F.tanh)(unary_rule("Tanh"))
rule(F.selu)(unary_rule("Selu", alpha=_SELU_ALPHA, gamma=_SELU_SCALE))
rule(F.hardsigmoid)(unary_rule("HardSigmoid", alpha=1.0 / 6.0, beta=0.5))


@rule(F.leaky_relu)
def _leaky_relu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    out = graph.one("LeakyRelu", [x.name], alpha=float(a["negative_slope"]))
    return wrapped(graph, value, out, x)


@rule(F.elu)
def _elu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    return wrapped(graph, value, graph.one("Elu", [x.name], alpha=float(a["alpha"])), x)


@rule(F.relu6)
def _relu6(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    bounds = [graph.scalar(0.0, x.dtype), graph.scalar(6.0, x.dtype)]
    return wrapped(graph, value, graph.one("Clip", [x.name, *bounds]), x)


@rule(F.silu)
def _silu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    return wrapped(graph, value, graph.one("Mul", [x.name, graph.one("Sigmoid", [x.name])]), x)


@rule(F.hardswish)
def _hardswish(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    if graph.opset >= 14:
        return wrapped(graph, value, graph.one("HardSwish", [x.name]), x)
    gate = graph.one("HardSigmoid", [x.name], alpha=1.0 / 6.0, beta=0.5)
    return wrapped(graph, value, graph.one("Mul", [x.name, gate]), x)


def _softplus_name(graph: Graph, x: ExportArray, beta: float, threshold: float) -> str:
    """torch's softplus: ``log(1 + exp(beta x)) / beta``, and ``x`` where ``beta x`` is
    above ``threshold``."""
    scaled = x.name if beta == 1.0 else graph.one("Mul", [x.name, graph.scalar(beta, x.dtype)])
    soft = graph.one("Softplus", [scaled])
    if beta != 1.0:
        soft = graph.one("Div", [soft, graph.scalar(beta, x.dtype)])
    above = graph.one("Greater", [scaled, graph.scalar(threshold, x.dtype)])
    return graph.one("Where", [above, x.name, soft])


@rule(F.softplus)
def _softplus(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    name = _softplus_name(graph, x, float(a["beta"]), float(a["threshold"]))
    return wrapped(graph, value, name, x)


@rule(F.mish)
def _mish(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    if graph.opset >= 18:
        return wrapped(graph, value, graph.one("Mish", [x.name]), x)
    gate = graph.one("Tanh", [_softplus_name(graph, x, 1.0, 20.0)])
    return wrapped(graph, value, graph.one("Mul", [x.name, gate]), x)


@rule(F.gelu)
def _gelu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    approximate = str(a["approximate"])
    if graph.opset >= 20:
        return wrapped(graph, value, graph.one("Gelu", [x.name], approximate=approximate), x)
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
    return wrapped(graph, value, graph.one("Mul", [half, graph.one("Add", [gate, one])]), x)


@rule(F.prelu)
def _prelu(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    slope = operand_name(graph, a["weight"], x)
    if x.ndim > 2:  # ONNX broadcasts the slope from the right: (C, 1, ..., 1)
        slope = graph.one("Reshape", [slope, graph.ints([-1] + [1] * (x.ndim - 2))])
    return wrapped(graph, value, graph.one("PRelu", [x.name, slope]), x)


def _softmax_rule(op_type: str) -> Rule:
    def export(graph: Graph, a: dict[str, Any], value: Any) -> Any:
        x = traced_input(a)
        name = x.name
        if a["dtype"] is not None:
            name = graph.one("Cast", [name], to=onnx_type(graph.onnx, a["dtype"]))
        axis = int(a["dim"]) % x.ndim
        return wrapped(graph, value, graph.one(op_type, [name], axis=axis), x)

    return export


rule(F.softmax)(_softmax_rule("Softmax"))
rule(F.log_softmax)(_softmax_rule("LogSoftmax"))


# --------------------------------------------------------------------- dense and shaping


@rule(F.linear)
def _linear(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x, weight, bias = traced_input(a), a["weight"], a["bias"]
    if x.ndim == 2:
        inputs = _weighted_inputs(graph, x, weight, bias)
        return wrapped(graph, value, graph.one("Gemm", inputs, transB=1), x)
    w = operand_name(graph, weight, x)
    name = graph.one("MatMul", [x.name, graph.one("Transpose", [w], perm=[1, 0])])
    if bias is not None:
        name = graph.one("Add", [name, operand_name(graph, bias, x)])
    batch = x.batch_axis if x.batch_axis is not None and x.batch_axis < x.ndim - 1 else None
    return graph.wrap(value, name, batch, x.lost)


@rule(F.flatten)
def _flatten(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = int(a["start_dim"]) % x.ndim, int(a["end_dim"]) % x.ndim
    if start == 1 and end == x.ndim - 1:
        return wrapped(graph, value, graph.one("Flatten", [x.name], axis=1), x)
    shape = list(x.shape)
    return reshape(x, (*shape[:start], -1, *shape[end + 1 :]))


@rule(F.dropout, F.dropout1d, F.dropout2d, F.dropout3d)
def _dropout(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    if a["training"] and float(a["p"]) > 0:
        raise OnnxExportError(
            "dropout with training=True: export the model in evaluation mode, where dropout "
            "passes its input through (xpnet.onnx.export calls model.eval() for you)"
        )
    return x


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


@rule(F.pad)
def _pad(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
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
    return wrapped(graph, value, graph.one("Pad", inputs, mode=onnx_mode), x)


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
    return wrapped(graph, value, name, x)


# ------------------------------------------------------------------------------ resizing


@rule(F.interpolate)
def _interpolate(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    if a["antialias"]:
        raise OnnxExportError("interpolate with antialias=True is not exported")
    mode = a["mode"]
    rank = x.ndim - 2
    outs = [int(n) for n in value.shape[2:]]
    if mode == "area":
        return adaptive_rule("avg")(graph, {"input": x}, value)
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
    return wrapped(graph, value, graph.one("Resize", inputs, **attributes), x)


@rule(F.pixel_shuffle)
def _pixel_shuffle(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    if x.ndim != 4:
        raise OnnxExportError(f"pixel_shuffle of a {x.ndim}-D input: ONNX's takes (N, C, H, W)")
    r = int(a["upscale_factor"])
    return wrapped(graph, value, graph.one("DepthToSpace", [x.name], blocksize=r, mode="CRD"), x)


@rule(F.pixel_unshuffle)
def _pixel_unshuffle(graph: Graph, a: dict[str, Any], value: Any) -> Any:
    x = traced_input(a)
    if x.ndim != 4 or x.batch_axis not in (0, None):
        raise OnnxExportError(f"pixel_unshuffle of a {x.ndim}-D input: export takes (N, C, H, W)")
    r = int(a["downscale_factor"])
    _, c, h, w = (int(n) for n in x.shape)
    first = 0 if x.batch_axis == 0 else int(x.shape[0])
    name = graph.one("Reshape", [x.name, graph.ints([first, c, h // r, r, w // r, r])])
    name = graph.one("Transpose", [name], perm=[0, 1, 3, 5, 2, 4])
    name = graph.one("Reshape", [name, graph.ints([first, c * r * r, h // r, w // r])])
    return wrapped(graph, value, name, x)
