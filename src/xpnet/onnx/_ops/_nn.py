"""Convolutions, pooling, normalisation, activations and dense products, through
:mod:`xpnet.functional` (each with its hand-written pullback, so an imported graph
trains)."""

from __future__ import annotations

import math
from functools import reduce
from typing import Any

import array_api_compat
import numpy as np

from ... import functional as F
from ...functional._autodiff import primal
from ._registry import Call, Host, host_dtype, namespace, operator, shape

__all__: list[str] = []

# By the number of spatial axes (each takes per-axis tuples of that length).
_CONV: dict[int, Any] = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T: dict[int, Any] = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX_POOL: dict[int, Any] = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL: dict[int, Any] = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _rank(call: Call, x: Any) -> int:
    rank = int(x.ndim) - 2
    if rank not in (1, 2, 3):
        raise call.unsupported(f"{x.ndim}-D input (xpnet convolves and pools 1 to 3 axes)")
    return rank


def _per_axis(call: Call, name: str, rank: int, default: int) -> list[int]:
    values = call.ints_attr(name, [default] * rank)
    assert values is not None
    if len(values) != rank:
        raise call.fail(f"attribute {name!r}: expected {rank} values, got {values}")
    return values


def _pads(
    call: Call, sizes: list[int], extents: list[int], strides: list[int], rank: int
) -> tuple[list[int], list[int]]:
    """``(begins, ends)`` per spatial axis from ``pads`` and ``auto_pad``, for windows of
    ``extents`` (dilated kernel sizes)."""
    auto_pad = call.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, extent, stride in zip(sizes, extents, strides, strict=True):
            total = max((-(-size // stride) - 1) * stride + extent - size, 0)
            small, large = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else large)
            ends.append(large if auto_pad == "SAME_UPPER" else small)
        return begins, ends
    if auto_pad == "VALID":
        return [0] * rank, [0] * rank
    if auto_pad != "NOTSET":
        raise call.fail(f"attribute 'auto_pad': unknown value {auto_pad!r}")
    pads = _per_axis(call, "pads", 2 * rank, 0)
    if any(p < 0 for p in pads):
        raise call.fail(f"attribute 'pads': negative padding {pads}")
    return pads[:rank], pads[rank:]


def _pad_spatial(x: Any, begins: list[int], ends: list[int], fill: float = 0.0) -> Any:
    """``x`` padded on its spatial axes (begin and end per axis) with ``fill``."""
    if not any(begins) and not any(ends):
        return x
    torch_order: list[int] = []
    for before, after in zip(reversed(begins), reversed(ends), strict=True):
        torch_order += [before, after]
    return F.pad(x, tuple(torch_order), mode="constant", value=fill)


def _cut_spatial(x: Any, begins: list[int], sizes: list[int]) -> Any:
    """``x[..., b0:b0+s0, b1:b1+s1, ...]`` over the spatial axes."""
    index = (
        slice(None),
        slice(None),
        *(slice(b, b + s) for b, s in zip(begins, sizes, strict=True)),
    )
    return x[index]


# -------------------------------------------------------------------------- convolutions


@operator("Conv")
def _conv(call: Call) -> Any:
    x, weight, bias = call.array(0, "X"), call.array(1, "W"), call.optional(2)
    rank = _rank(call, x)
    kernel = list(shape(weight)[2:])
    declared = call.ints_attr("kernel_shape", None)
    if declared is not None and declared != kernel:
        raise call.fail(f"attribute 'kernel_shape' {declared} differs from W's {kernel}")
    strides = _per_axis(call, "strides", rank, 1)
    dilations = _per_axis(call, "dilations", rank, 1)
    groups = call.int_attr("group", 1)
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    begins, ends = _pads(call, list(shape(x)[2:]), extents, strides, rank)
    if begins == ends:
        padding: Any = tuple(begins)
    else:  # asymmetric: pad explicitly (torch's convolutions pad both sides alike)
        x, padding = _pad_spatial(x, begins, ends), 0
    return _CONV[rank](x, weight, bias, tuple(strides), padding, tuple(dilations), groups)


@operator("ConvTranspose")
def _conv_transpose(call: Call) -> Any:
    x, weight, bias = call.array(0, "X"), call.array(1, "W"), call.optional(2)
    rank = _rank(call, x)
    groups = call.int_attr("group", 1)
    kernel = list(shape(weight)[2:])
    strides = _per_axis(call, "strides", rank, 1)
    dilations = _per_axis(call, "dilations", rank, 1)
    extra = _per_axis(call, "output_padding", rank, 0)
    sizes = list(shape(x)[2:])
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    full = [s * (n - 1) + e + p for s, n, e, p in zip(strides, sizes, extents, extra, strict=True)]
    auto_pad = call.attr("auto_pad", "NOTSET")
    wanted = call.ints_attr("output_shape", None)
    if wanted is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if wanted is None:
            wanted = [n * s for n, s in zip(sizes, strides, strict=True)]
        wanted = wanted[-rank:]
        totals = [f - w for f, w in zip(full, wanted, strict=True)]
        upper = auto_pad == "SAME_UPPER"
        begins = [t // 2 if upper else t - t // 2 for t in totals]
        ends = [t - b for t, b in zip(totals, begins, strict=True)]
    elif auto_pad == "VALID":
        begins, ends = [0] * rank, [0] * rank
    else:
        pads = _per_axis(call, "pads", 2 * rank, 0)
        begins, ends = pads[:rank], pads[rank:]
    y = _CONV_T[rank](x, weight, None, tuple(strides), 0, 0, groups, tuple(dilations))
    # The output padding's rows (which no input reaches), and negative pads (an output
    # shape beyond the full output), as zeros; then the pads cut off.
    y = _pad_spatial(y, [max(-b, 0) for b in begins],
                     [p + max(-e, 0) for p, e in zip(extra, ends, strict=True)])  # fmt: skip
    y = _cut_spatial(
        y,
        [max(b, 0) for b in begins],
        [f - b - e for f, b, e in zip(full, begins, ends, strict=True)],
    )
    if bias is not None:
        y = y + namespace(bias).reshape(bias, (1, -1) + (1,) * rank)
    return y


# -------------------------------------------------------------------------- pooling


def _pool_geometry(
    call: Call, x: Any, dilated: bool
) -> tuple[int, list[int], list[int], list[int], list[int], list[int], list[int]]:
    """``(rank, kernel, strides, dilations, begins, ends, out)`` of a MaxPool or
    AveragePool, ``out`` by ONNX's rule (ceil mode drops a last window that would start in
    the end padding)."""
    rank = _rank(call, x)
    kernel = _per_axis(call, "kernel_shape", rank, 1)
    strides = _per_axis(call, "strides", rank, 1)
    dilations = _per_axis(call, "dilations", rank, 1) if dilated else [1] * rank
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    sizes = list(shape(x)[2:])
    begins, ends = _pads(call, sizes, extents, strides, rank)
    ceil = bool(call.int_attr("ceil_mode", 0))
    auto_pad = call.attr("auto_pad", "NOTSET")
    out = []
    for size, extent, stride, before, after in zip(sizes, extents, strides, begins, ends,
                                                   strict=True):  # fmt: skip
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            count = -(-size // stride)
        else:
            span = size + before + after - extent
            if span < 0:
                raise call.fail(f"the window ({extent}) is larger than the padded input")
            count = (-(-span // stride) if ceil else span // stride) + 1
            if ceil and (count - 1) * stride >= size + before:
                count -= 1
        out.append(count)
    return rank, kernel, strides, dilations, begins, ends, out


def _windows(
    x: Any, strides: list[int], extents: list[int], begins: list[int], ends: list[int],
    out: list[int], fill: float,
) -> tuple[Any, list[int]]:  # fmt: skip
    """``x`` padded so that exactly ``out`` windows fit per axis (the extra end padding the
    ceil mode needs), and that extra."""
    sizes = list(shape(x)[2:])
    extra = [
        max((n - 1) * s + e - (size + b + a), 0)
        for n, s, e, size, b, a in zip(out, strides, extents, sizes, begins, ends, strict=True)
    ]
    padded = _pad_spatial(x, begins, [a + e for a, e in zip(ends, extra, strict=True)], fill)
    return padded, extra


@operator("MaxPool")
def _max_pool(call: Call) -> Any:
    x = call.array(0)
    if not namespace(x).isdtype(x.dtype, "real floating"):
        raise call.unsupported(f"MaxPool of {x.dtype} values (xpnet pools floating point)")
    rank, kernel, strides, dilations, begins, ends, out = _pool_geometry(
        call, x, dilated=call.opset >= 10
    )
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    padded, _ = _windows(x, strides, extents, begins, ends, out, -math.inf)
    pool = _MAX_POOL[rank]
    wants_indices = len(call.node.outputs) > 1 and call.node.outputs[1] != ""
    result = pool(padded, tuple(kernel), tuple(strides), 0, tuple(dilations), False, wants_indices)
    values = _cut_spatial(result[0] if wants_indices else result, [0] * rank, out)
    if not wants_indices:
        return values
    indices = _cut_spatial(result[1], [0] * rank, out)
    return values, _onnx_indices(call, x, indices, shape(padded)[2:], begins)


def _onnx_indices(
    call: Call, x: Any, indices: Any, padded: tuple[int, ...], begins: list[int]
) -> Any:
    """torch's indices (into each padded plane, row-major) as ONNX's: into the whole
    unpadded input, row-major, or column-major over the plane with ``storage_order`` 1."""
    xp = namespace(indices)
    dims = shape(x)
    sizes = dims[2:]
    coordinates = []
    rest = indices
    for extent in reversed(padded):
        coordinates.append(rest % extent)
        rest = rest // extent
    coordinates = [c - b for c, b in zip(reversed(coordinates), begins, strict=True)]
    order = (
        range(len(sizes)) if not call.int_attr("storage_order", 0) else reversed(range(len(sizes)))
    )
    flat = xp.zeros_like(indices)
    for axis in order:
        flat = flat * sizes[axis] + coordinates[axis]
    n, c = dims[0], dims[1]
    planes = xp.reshape(xp.arange(n * c, dtype=indices.dtype), (n, c) + (1,) * len(sizes))
    return flat + planes * math.prod(sizes)


@operator("AveragePool")
def _average_pool(call: Call) -> Any:
    x = call.array(0)
    rank, kernel, strides, dilations, begins, ends, out = _pool_geometry(
        call, x, dilated=call.opset >= 19
    )
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    padded, extra = _windows(x, strides, extents, begins, ends, out, 0.0)

    def pool(a: Any) -> Any:
        """Each window's mean over all its positions (a depthwise convolution by a constant
        kernel where the window is dilated)."""
        if not any(d != 1 for d in dilations):
            return _AVG_POOL[rank](a, tuple(kernel), tuple(strides), 0)
        channels = shape(a)[1]
        dtype = host_dtype(a)
        taps = np.full((channels, 1, *kernel), 1.0 / math.prod(kernel), dtype=dtype)
        weight = taps if isinstance(a, np.ndarray) else call.place_host(taps, a)
        return _CONV[rank](a, weight, None, tuple(strides), 0, tuple(dilations), channels)

    y = _cut_spatial(pool(padded), [0] * rank, out)
    if not any(begins) and not any(ends) and not any(extra):
        return y
    # Each window's mean over the positions it may count: the input, and the pads too with
    # count_include_pad (never the ceil mode's extra): a host factor per output position.
    counted = np.ones((1, 1, *shape(x)[2:]))
    if call.int_attr("count_include_pad", 0):
        counted = np.pad(counted, [(0, 0), (0, 0), *zip(begins, ends, strict=True)],
                         constant_values=1.0)  # fmt: skip
        window_begins = [0] * rank
        window_ends = [e for e in extra]
    else:
        window_begins, window_ends = begins, [a + e for a, e in zip(ends, extra, strict=True)]
    counted = np.pad(counted, [(0, 0), (0, 0), *zip(window_begins, window_ends, strict=True)])
    fraction = _cut_spatial(pool(counted), [0] * rank, out)
    factor = np.asarray(1.0 / fraction, dtype=host_dtype(x))
    return y * call.place_host(factor, y)


@operator("GlobalAveragePool")
def _global_average_pool(call: Call) -> Any:
    x = call.array(0)
    return namespace(x).mean(x, axis=tuple(range(2, x.ndim)), keepdims=True)


@operator("GlobalMaxPool")
def _global_max_pool(call: Call) -> Any:
    x = call.array(0)
    return namespace(x).max(x, axis=tuple(range(2, x.ndim)), keepdims=True)


@operator("LRN")
def _lrn(call: Call) -> Any:
    x = call.array(0)
    size = call.int_attr("size")
    alpha, beta = call.float_attr("alpha", 1e-4), call.float_attr("beta", 0.75)
    bias = call.float_attr("bias", 1.0)
    xp = namespace(x)
    channels = shape(x)[1]
    before, after = (size - 1) // 2, size // 2  # floor and ceil of (size - 1) / 2
    squares = x * x
    padded = F.pad(squares, (0, 0) * (x.ndim - 2) + (before, after))
    total = reduce(lambda a, b: a + b, (padded[:, k : k + channels, ...] for k in range(size)))
    return x / xp.pow(bias + (alpha / size) * total, beta)


# -------------------------------------------------------------------------- normalisation


@operator("BatchNormalization", foldable=False)
def _batch_norm(call: Call) -> Any:
    x = call.array(0)
    scale, offset = call.array(1, "scale"), call.array(2, "B")
    mean, var = call.array(3, "input_mean"), call.array(4, "input_var")
    eps = call.float_attr("epsilon", 1e-5)
    momentum = call.float_attr("momentum", 0.9)
    if call.opset < 9 and not call.int_attr("spatial", 1):
        raise call.unsupported("spatial=0 (per-activation statistics)")
    outputs = [name for name in call.node.outputs[1:] if name]
    if call.opset >= 14:
        node_trains = bool(call.int_attr("training_mode", 0))
    elif call.opset < 7:  # is_test says which until opset 7
        node_trains = not call.int_attr("is_test", 0)
    else:
        node_trains = bool(outputs)
    if not (node_trains or call.training):
        y, _, _ = F.batch_norm(x, mean, var, scale, offset, training=False, eps=eps)
        return y
    y, _, _ = F.batch_norm(x, None, None, scale, offset, training=True, eps=eps)
    # The running statistics by ONNX's rule (the biased batch variance), state and not part
    # of any gradient.
    xp = namespace(primal(x))
    axes = (0, *range(2, x.ndim))
    batch_mean = xp.mean(primal(x), axis=axes)
    batch_var = xp.var(primal(x), axis=axes)
    new_mean = primal(mean) * momentum + batch_mean * (1 - momentum)
    new_var = primal(var) * momentum + batch_var * (1 - momentum)
    call.update(3, new_mean)
    call.update(4, new_var)
    if len(call.node.outputs) == 1:
        return y
    return (y, new_mean, new_var)[: len(call.node.outputs)]


@operator("InstanceNormalization")
def _instance_norm(call: Call) -> Any:
    x, scale, offset = call.array(0), call.array(1, "scale"), call.array(2, "B")
    return F.instance_norm(x, weight=scale, bias=offset, eps=call.float_attr("epsilon", 1e-5))


@operator("GroupNormalization")
def _group_norm(call: Call) -> Any:
    x, scale, offset = call.array(0), call.array(1, "scale"), call.array(2, "bias")
    groups = call.int_attr("num_groups")
    channels = shape(x)[1]
    if groups <= 0 or channels % groups:
        raise call.fail(f"num_groups {groups} does not divide the {channels} channels")
    xp = namespace(scale, offset)
    if shape(scale)[0] == groups != channels:  # opset 18's per-group scale and bias
        scale = xp.repeat(scale, channels // groups)
        offset = xp.repeat(offset, channels // groups)
    return F.group_norm(x, groups, scale, offset, eps=call.float_attr("epsilon", 1e-5))


@operator("LayerNormalization")
def _layer_norm(call: Call) -> Any:
    x, scale, offset = call.array(0), call.array(1, "Scale"), call.optional(2)
    eps = call.float_attr("epsilon", 1e-5)
    dims = shape(x)
    axis = call.axis_attr(len(dims), -1)
    normalized = dims[axis:]
    affine = shape(scale) == normalized and (offset is None or shape(offset) == normalized)
    if affine:
        y = F.layer_norm(x, normalized, scale, offset, eps)
    else:  # a scale or bias that broadcasts: apply it after
        y = F.layer_norm(x, normalized, None, None, eps) * scale
        y = y if offset is None else y + offset
    if len(call.node.outputs) == 1:
        return y
    xp = namespace(x)
    axes = tuple(range(axis, len(dims)))
    mean = xp.mean(x, axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(xp.mean((x - mean) * (x - mean), axis=axes, keepdims=True) + eps)
    return (y, mean, inv_std)[: len(call.node.outputs)]


# -------------------------------------------------------------------------- activations


def _activation(name: str, function: Any, **defaults: float) -> None:
    """Register ``function(x, *float attributes)`` as the ONNX activation ``name``."""

    def run(call: Call) -> Any:
        return function(call.array(0), *(call.float_attr(k, v) for k, v in defaults.items()))

    operator(name)(run)


_activation("Relu", F.relu)
_activation("LeakyRelu", F.leaky_relu, alpha=0.01)
_activation("Sigmoid", F.sigmoid)
_activation("Tanh", F.tanh)
_activation("Elu", F.elu, alpha=1.0)
_activation("Mish", F.mish)
_activation("HardSwish", F.hardswish)


@operator("Selu")
def _selu(call: Call) -> Any:
    alpha = call.float_attr("alpha", 1.67326319217681884765625)
    gamma = call.float_attr("gamma", 1.05070102214813232421875)
    return F.elu(call.array(0), alpha) * gamma


@operator("Softplus")
def _softplus(call: Call) -> Any:
    x = call.array(0)
    return namespace(x).logaddexp(x, x * 0)  # log(exp(x) + 1), stable


@operator("Gelu")
def _gelu(call: Call) -> Any:
    approximate = call.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise call.fail(f"attribute 'approximate': unknown value {approximate!r}")
    return F.gelu(call.array(0), approximate=approximate)


@operator("HardSigmoid")
def _hard_sigmoid(call: Call) -> Any:
    x = call.array(0)
    alpha, beta = call.float_attr("alpha", 0.2), call.float_attr("beta", 0.5)
    return namespace(x).clip(x * alpha + beta, 0.0, 1.0)


@operator("PRelu")
def _prelu(call: Call) -> Any:
    x, slope = call.array(0), call.array(1, "slope")
    xp = namespace(x, slope)
    if call.opset < 7 and slope.ndim == 1 and x.ndim > 1 and shape(slope)[0] == shape(x)[1] > 1:
        slope = xp.reshape(slope, (-1,) + (1,) * (x.ndim - 2))  # per channel, before opset 7
    return xp.where(xp.less(x, 0), x * slope, x)


@operator("Clip", host_inputs=(1, 2))
def _clip(call: Call) -> Any:
    x = call.array(0)
    xp = namespace(x)
    if call.opset < 11:
        low, high = call.attr("min", None), call.attr("max", None)
        return xp.clip(x, low, high)
    bounds = []
    for index in (1, 2):  # min, max
        value = call.values[index] if call.has(index) else None
        bounds.append(
            value.value.reshape(-1)[0].item() if isinstance(value, Host)
            else call.array(index) if value is not None else None
        )  # fmt: skip
    low, high = bounds
    if not any(hasattr(b, "shape") for b in bounds):
        return xp.clip(x, low, high)
    y = x if low is None else xp.maximum(x, low)
    return y if high is None else xp.minimum(y, high)


def _softmax(call: Call, log: bool) -> Any:
    x = call.array(0)
    dims = shape(x)
    function = F.log_softmax if log else F.softmax
    if call.opset >= 13:
        return function(x, dim=call.axis_attr(len(dims), -1))
    # Before opset 13: the input as a 2-D matrix, rows from the axes before ``axis``.
    axis = call.int_attr("axis", 1) % max(len(dims), 1)
    xp = namespace(x)
    matrix = xp.reshape(x, (math.prod(dims[:axis]), math.prod(dims[axis:])))
    return xp.reshape(function(matrix, dim=1), dims)


@operator("Softmax")
def _softmax_op(call: Call) -> Any:
    return _softmax(call, log=False)


@operator("LogSoftmax")
def _log_softmax_op(call: Call) -> Any:
    return _softmax(call, log=True)


# -------------------------------------------------------------------------- products


@operator("MatMul")
def _matmul(call: Call) -> Any:
    a, b = call.array(0), call.array(1)
    return namespace(a, b).matmul(a, b)


@operator("Gemm")
def _gemm(call: Call) -> Any:
    a, b, c = call.array(0, "A"), call.array(1, "B"), call.optional(2)
    alpha, beta = call.float_attr("alpha", 1.0), call.float_attr("beta", 1.0)
    trans_a, trans_b = call.int_attr("transA", 0), call.int_attr("transB", 0)
    if a.ndim != 2 or b.ndim != 2:
        raise call.fail(f"A and B must be matrices, got shapes {shape(a)} and {shape(b)}")
    if not trans_a and trans_b and alpha == 1.0 and (c is None or (beta == 1.0 and c.ndim == 1)):
        return F.linear(a, b, c)  # a dense layer: one recorded op
    xp = namespace(a, b)
    y = xp.matmul(
        xp.matrix_transpose(a) if trans_a else a, xp.matrix_transpose(b) if trans_b else b
    )
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


@operator("Dropout", foldable=False, host_inputs=(1, 2))
def _dropout(call: Call) -> Any:
    x = call.array(0)
    if call.opset >= 12:
        ratio = call.host_scalar(1, "ratio") if call.has(1) else 0.5
        trains = bool(call.host_scalar(2, "training_mode")) if call.has(2) else False
    else:
        ratio = call.float_attr("ratio", 0.5)
        trains = call.opset < 7 and not call.int_attr("is_test", 0)
    trains = trains or call.training
    y = F.dropout(x, p=float(ratio), training=trains) if trains and ratio else x
    if len(call.node.outputs) < 2 or not call.node.outputs[1]:
        return y
    if trains and ratio:
        raise call.unsupported("the mask output of a Dropout that drops (training, ratio > 0)")
    xp = namespace(primal(x))
    return y, xp.ones(shape(x), dtype=xp.bool, device=array_api_compat.device(primal(x)))
