"""ONNX export: every layer, every model of ``xpnet.models``, models written by users, and
imported graphs exported again, each run by onnxruntime against the model itself.

The oracle is onnxruntime, which shares no code with xpnet: the exported graph, run by it
on fresh inputs at two batch sizes (the batch axis is symbolic), must give what the xpnet
model gives, to float32 round-off (rtol 1e-5). That xpnet's own outputs equal torch's is
what the rest of the suite shows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import array_api_compat
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (the onnx extra) is missing")

import xpnet  # noqa: E402
import xpnet.functional as F  # noqa: E402
import xpnet.onnx as xo  # noqa: E402
from helpers import BackendCase  # noqa: E402
from xpnet import models, nn  # noqa: E402

RTOL = 1e-5


def _ns(x: Any) -> Any:
    return array_api_compat.array_namespace(x)


class Fn(nn.Module):
    """A user's module: ``forward`` is ``fn(x, *layers)``."""

    def __init__(self, fn: Callable[..., Any], *layers: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.layers = nn.ModuleList(list(layers))

    def forward(self, x: Any) -> Any:
        return self.fn(x, *self.layers)


def _layer(module: nn.Module) -> Fn:
    return Fn(lambda x, m: m(x), module)


IMAGE = (2, 4, 9, 9)
# name -> (model factory, input shape, ONNX operators the graph must hold)
LAYERS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], set[str]]] = {
    "conv same, even kernel, dilated, groups": (
        lambda: _layer(nn.Conv2d(4, 6, 4, padding="same", dilation=2, groups=2)), IMAGE, {"Conv"}),
    "conv stride 2 valid no bias": (
        lambda: _layer(nn.Conv2d(4, 3, 3, stride=2, bias=False)), IMAGE, {"Conv"}),
    "conv reflect padding": (
        lambda: _layer(nn.Conv2d(4, 3, 3, padding=2, padding_mode="reflect")), IMAGE,
        {"Pad", "Conv"}),
    "conv circular padding": (
        lambda: _layer(nn.Conv2d(4, 3, 3, padding=1, padding_mode="circular")), IMAGE, {"Conv"}),
    "conv replicate padding": (
        lambda: _layer(nn.Conv2d(4, 3, 3, padding=(1, 2), padding_mode="replicate")), IMAGE,
        {"Pad", "Conv"}),
    "conv1d": (lambda: _layer(nn.Conv1d(4, 3, 3, padding=1, stride=2)), (2, 4, 11), {"Conv"}),
    "conv3d": (lambda: _layer(nn.Conv3d(4, 2, 3, padding=1)), (2, 4, 5, 5, 5), {"Conv"}),
    "transposed conv, output padding, groups": (
        lambda: _layer(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1,
                                          groups=2)), IMAGE, {"ConvTranspose"}),
    "transposed conv1d dilated": (
        lambda: _layer(nn.ConvTranspose1d(4, 2, 3, stride=2, dilation=2)), (2, 4, 7),
        {"ConvTranspose"}),
    "max pool, ceil mode, padded, dilated": (
        lambda: Fn(lambda x: F.max_pool2d(x, 3, 2, padding=1, dilation=2, ceil_mode=True)),
        IMAGE, {"MaxPool"}),
    "max pool 2, ceil mode": (
        lambda: _layer(nn.MaxPool2d(2, ceil_mode=True)), IMAGE, {"MaxPool"}),
    "max pool 3d": (lambda: _layer(nn.MaxPool3d(2, 1)), (2, 2, 4, 5, 6), {"MaxPool"}),
    "average pool": (lambda: _layer(nn.AvgPool2d(3, 2, padding=1)), IMAGE, {"AveragePool"}),
    "average pool, ceil mode, padding not counted": (
        lambda: _layer(nn.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)),
        (2, 4, 10, 10), {"AveragePool"}),
    "average pool, ceil mode": (
        lambda: _layer(nn.AvgPool2d(2, ceil_mode=True)), IMAGE, {"AveragePool"}),
    "average pool, divisor override": (
        lambda: Fn(lambda x: F.avg_pool2d(x, 2, divisor_override=3)), IMAGE, {"AveragePool"}),
    "average pool 1d, ceil mode": (
        lambda: _layer(nn.AvgPool1d(3, 2, 1, ceil_mode=True)), (2, 3, 10), {"AveragePool"}),
    "adaptive average pool 3x5 (unequal windows)": (
        lambda: _layer(nn.AdaptiveAvgPool2d((3, 5))), IMAGE, {"ReduceMean"}),
    "adaptive average pool 3 (equal windows)": (
        lambda: _layer(nn.AdaptiveAvgPool2d(3)), IMAGE, {"AveragePool"}),
    "adaptive max pool (4, None)": (
        lambda: _layer(nn.AdaptiveMaxPool2d((4, None))), IMAGE, {"ReduceMax"}),
    "adaptive max pool 1d to 1": (
        lambda: _layer(nn.AdaptiveMaxPool1d(1)), (2, 3, 7), {"GlobalMaxPool"}),
    "linear then batch norm 1d": (
        lambda: nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6)), (3, 5),
        {"Gemm", "BatchNormalization"}),
    "batch norm without running statistics": (
        lambda: _layer(nn.BatchNorm2d(4, track_running_stats=False)), IMAGE, {"ReduceMean"}),
    "batch norm without affine": (
        lambda: _layer(nn.BatchNorm2d(4, affine=False)), IMAGE, {"BatchNormalization"}),
    "instance norm": (
        lambda: _layer(nn.InstanceNorm2d(4, affine=True)), IMAGE, {"InstanceNormalization"}),
    "instance norm with running statistics": (
        lambda: _layer(nn.InstanceNorm2d(4, track_running_stats=True)), IMAGE,
        {"BatchNormalization"}),
    "group norm": (lambda: _layer(nn.GroupNorm(2, 4)), IMAGE, set()),
    "layer norm over two axes": (lambda: _layer(nn.LayerNorm((9, 9))), IMAGE, set()),
    "layer norm without affine": (
        lambda: _layer(nn.LayerNorm(9, elementwise_affine=False)), IMAGE, set()),
    "activations": (
        lambda: Fn(lambda x: F.relu6(x * 4) + F.elu(x, 0.7) + F.selu(x) + F.leaky_relu(x, 0.2)
                   + F.silu(x) + F.hardswish(x * 4) + F.hardsigmoid(x * 4) + F.sigmoid(x)
                   + F.tanh(x) + F.relu(x)),
        IMAGE, {"Clip", "Elu", "Selu", "LeakyRelu", "HardSigmoid", "Sigmoid", "Tanh", "Relu"}),
    "gelu, exact and tanh": (
        lambda: Fn(lambda x: F.gelu(x) + F.gelu(x, approximate="tanh")), IMAGE, set()),
    "softplus (beta, threshold) and mish": (
        lambda: Fn(lambda x: F.softplus(x * 20, beta=2, threshold=5) + F.mish(x * 3)
                   + F.softplus(x)), IMAGE, {"Softplus"}),
    "prelu per channel": (lambda: _layer(nn.PReLU(4)), IMAGE, {"PRelu"}),
    "prelu shared": (lambda: _layer(nn.PReLU()), (3, 5), {"PRelu"}),
    "softmax and log softmax": (
        lambda: Fn(lambda x: F.softmax(x, dim=1) + F.log_softmax(x, dim=-1)), IMAGE,
        {"Softmax", "LogSoftmax"}),
    "linear on 4-d input": (lambda: _layer(nn.Linear(9, 3)), IMAGE, {"MatMul"}),
    "flatten from axis 2": (lambda: _layer(nn.Flatten(2)), IMAGE, {"Reshape"}),
    "flatten everything": (lambda: Fn(lambda x: F.flatten(x)), IMAGE, {"Reshape"}),
    "dropout (evaluation mode)": (
        lambda: Fn(lambda x, d: d(x) * 2, nn.Dropout(0.5)), IMAGE, {"Mul"}),
    "pad: reflect, replicate, constant, circular": (
        lambda: Fn(lambda x: F.pad(x, (1, 2, 0, 1), mode="reflect")
                   + F.pad(x, (1, 2, 0, 1), mode="replicate")
                   + F.pad(x, (1, 2, 0, 1), value=0.5) + F.pad(x, (1, 2, 0, 1), mode="circular")),
        IMAGE, {"Pad"}),
    "upsample nearest x2": (lambda: _layer(nn.Upsample(scale_factor=2)), IMAGE, {"Resize"}),
    "nearest to a size": (
        lambda: Fn(lambda x: F.interpolate(x, size=(13, 20))), IMAGE, {"Resize"}),
    "nearest-exact": (
        lambda: Fn(lambda x: F.interpolate(x, size=(5, 14), mode="nearest-exact")), IMAGE,
        {"Resize"}),
    "bilinear x1.5": (
        lambda: Fn(lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear")), IMAGE,
        {"Resize"}),
    "bilinear, align corners": (
        lambda: Fn(lambda x: F.interpolate(x, size=(4, 17), mode="bilinear",
                                           align_corners=True)), IMAGE, {"Resize"}),
    "linear 1d": (
        lambda: Fn(lambda x: F.interpolate(x, size=5, mode="linear")), (2, 3, 11), {"Resize"}),
    "area": (lambda: Fn(lambda x: F.interpolate(x, size=(4, 3), mode="area")), IMAGE, set()),
    "pixel shuffle": (lambda: _layer(nn.PixelShuffle(2)), (2, 8, 3, 5), {"DepthToSpace"}),
    "pixel unshuffle": (lambda: _layer(nn.PixelUnshuffle(3)), IMAGE, {"Transpose"}),
    "array functions": (
        lambda: Fn(lambda x: _ns(x).where(x > 0.2, _ns(x).exp(x), _ns(x).abs(x) ** 1.5)
                   - _ns(x).clip(x, -0.5, 0.5) / 3
                   + _ns(x).maximum(x, 0.1) * _ns(x).sqrt(_ns(x).abs(x) + 1)),
        IMAGE, {"Where", "Greater", "Pow", "Clip", "Max"}),
    "reductions": (
        lambda: Fn(lambda x: _ns(x).mean(x, axis=(2, 3), keepdims=True) * x
                   + _ns(x).std(x, axis=1, keepdims=True)
                   + _ns(x).max(x, axis=-1, keepdims=True)
                   - _ns(x).sum(x, axis=(1,), keepdims=True)),
        IMAGE, {"ReduceMean", "ReduceMax", "ReduceSum"}),
    "indexing": (
        lambda: Fn(lambda x: x[:, :2, 1:-1, ::2] + x[:, 2:, None, -1, 0:9:2][:, :, 0, None, :]),
        IMAGE, {"Slice", "Squeeze", "Unsqueeze"}),
    "concat and stack": (
        lambda: Fn(lambda x: _ns(x).concat([x, -x], axis=1) + _ns(x).reshape(
            _ns(x).stack([x, x * 2], axis=2), (x.shape[0], 8, 9, 9))), IMAGE, {"Concat"}),
    "transpose, reshape, matmul": (
        lambda: Fn(lambda x: _ns(x).permute_dims(_ns(x).reshape(x, (x.shape[0], 4, 81)), (0, 2, 1))
                   @ _ns(x).ones((4, 3), dtype=x.dtype)), IMAGE, {"Transpose", "MatMul"}),
    "squeeze and expand_dims": (
        lambda: Fn(lambda x: _ns(x).squeeze(_ns(x).expand_dims(_ns(x).mean(x, axis=1), axis=1),
                                            axis=1)), IMAGE, {"Squeeze", "Unsqueeze"}),
    "flip and take": (
        lambda: Fn(lambda x: _ns(x).flip(x, axis=(2,))
                   + _ns(x).take(x, _ns(x).asarray([2, 0, 1, 3]), axis=1)), IMAGE,
        {"Slice", "Gather"}),
    "astype and ones_like": (
        lambda: Fn(lambda x: _ns(x).astype(_ns(x).astype(x * 3, _ns(x).int32), x.dtype)
                   + _ns(x).ones_like(x)), IMAGE, {"Cast", "ConstantOfShape"}),
}  # fmt: skip

#: The operators ONNX added after opset 13, and the opset each appears from.
NEWER = {"GroupNormalization": 21, "LayerNormalization": 17, "Gelu": 20, "Mish": 18,
         "HardSwish": 14}  # fmt: skip


def _randomize_statistics(model: nn.Module, seed: int) -> None:
    """Running statistics away from 0 and 1, so that the graph must use them."""
    rng = np.random.default_rng(seed)
    for key, value in model.named_buffers():
        if key.endswith("running_mean"):
            model.set_buffer(key, xpnet.asarray(rng.normal(size=value.shape), dtype="float32"))
        elif key.endswith("running_var"):
            model.set_buffer(key, xpnet.asarray(rng.uniform(0.5, 2.0, value.shape), "float32"))


def _check_parity(
    model: nn.Module, proto: Any, shape: tuple[int, ...], batches: tuple[int, ...], seed: int
) -> None:
    """onnxruntime runs ``proto`` as ``model`` runs, at each batch size (fresh inputs)."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    for batch in batches:
        x = rng.standard_normal((batch, *shape[1:])).astype(np.float32)
        expected = np.asarray(xpnet.to_numpy(model(xpnet.asarray(x))))
        (got,) = session.run(None, {"input": x})
        assert got.shape == expected.shape
        scale = float(np.max(np.abs(expected)))
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_exports_as_its_onnx_operator(backend: BackendCase, name: str) -> None:
    _check_layer(backend, name, 17)


@pytest.mark.skip_backends(
    "array_api_strict", "torch", "jax",
    reason="which nodes an opset gets does not depend on the backend that traced them; "
    "every backend runs the default opset",
)  # fmt: skip
@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_exports_at_the_oldest_and_newest_opsets(
    backend: BackendCase, name: str, opset: int
) -> None:
    _check_layer(backend, name, opset)


def _check_layer(backend: BackendCase, name: str, opset: int) -> None:
    build, shape, operators = LAYERS[name]
    model = build()
    _randomize_statistics(model, seed=1)
    model.eval()
    x = backend.asarray(np.random.default_rng(0).standard_normal(shape), "float32")
    proto = xo.export(model, x, opset=opset)
    written = {node.op_type for node in proto.graph.node}
    assert operators <= written, f"{name}: expected {operators} among {written}"
    for operator, since in NEWER.items():  # written only from the opset that has it
        assert opset >= since or operator not in written
    assert proto.opset_import[0].version == opset
    _check_parity(model, proto, shape, (shape[0], shape[0] + 3), seed=2)


def test_newer_operators_are_written_where_the_opset_has_them() -> None:
    # The same layers at opset 21 use ONNX's own operators, at 13 exact compositions.
    written: dict[int, set[str]] = {}
    model = Fn(lambda x, g, ln: F.mish(F.gelu(ln(g(x)))) + F.hardswish(x),
               nn.GroupNorm(2, 4), nn.LayerNorm(9))  # fmt: skip
    x = xpnet.asarray(np.ones(IMAGE, np.float32))
    for opset in (13, 21):
        written[opset] = {n.op_type for n in xo.export(model, x, opset=opset).graph.node}
    assert set(NEWER) <= written[21]
    assert not set(NEWER) - {"HardSwish"} & written[13] and "HardSwish" not in written[13]


ZOO: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    name: ((lambda name=name, c=c, s=s: models.build_model(name, c, 10, s)), (2, c, s, s))
    for name in models.MODELS
    for c, s in [(3, 32) if name in models.MIN_IMAGE_SIZE or name == "resnet20" else (1, 28)]
}
ZOO["unet (transposed)"] = (lambda: models.unet(3, 2), (2, 3, 32, 32))
ZOO["unet (bilinear)"] = (lambda: models.unet(3, 2, bilinear=True), (2, 3, 32, 32))


@pytest.mark.skip_backends(
    "array_api_strict", "torch", "jax",
    reason="the graph is the same whichever backend traced it; the layer and user-model "
    "tests run on every backend, the whole zoo on numpy",
)  # fmt: skip
@pytest.mark.parametrize("name", list(ZOO))
def test_every_zoo_model_exports_with_onnxruntime_parity(backend: BackendCase, name: str) -> None:
    build, shape = ZOO[name]
    model = build()
    _randomize_statistics(model, seed=3)
    model.eval()
    x = xpnet.asarray(np.random.default_rng(0).standard_normal(shape), "float32")
    proto = xo.export(model, x)
    # One ONNX node per layer: a Conv per convolution (not a trace of its im2col), a batch
    # norm per batch norm.
    counts = {op: sum(n.op_type == op for n in proto.graph.node)
              for op in ("Conv", "ConvTranspose", "BatchNormalization", "Gemm")}  # fmt: skip
    layers = [type(m).__name__ for _, m in model.named_modules()]
    assert counts["Conv"] == layers.count("Conv2d")
    assert counts["ConvTranspose"] == layers.count("ConvTranspose2d")
    assert counts["BatchNormalization"] == layers.count("BatchNorm2d") + layers.count("BatchNorm1d")
    assert counts["Gemm"] == layers.count("Linear")
    # Initializers: the state_dict's parameters and statistics, under their keys.
    keys = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert {t.name for t in proto.graph.initializer} >= keys
    _check_parity(model, proto, shape, (2, 3), seed=4)


def _custom_family() -> list[Any]:
    from test_custom_models import FAMILY

    return FAMILY


@pytest.mark.parametrize("case", _custom_family(), ids=[f[0] for f in _custom_family()])
def test_user_written_models_export_with_onnxruntime_parity(
    backend: BackendCase, case: Any
) -> None:
    # The models torch users write (a residual add, a concatenated skip, a layer used twice,
    # two heads, multi-head attention, a depthwise block), with their own forward.
    _, build, shape, _, _ = case
    model = build(nn, F)
    _randomize_statistics(model, seed=5)
    model.eval()
    x = backend.asarray(np.random.default_rng(0).standard_normal(shape), "float32")
    proto = xo.export(model, x)
    _check_parity(model, proto, shape, (shape[0], shape[0] + 2), seed=6)


def test_exported_parameters_import_back_under_their_keys(tmp_path: Path) -> None:
    model = models.build_model("resnet_small", 1, 10, 12)
    _randomize_statistics(model, seed=7)
    path = tmp_path / "model.onnx"
    proto = xo.export(model, xpnet.asarray(np.zeros((1, 1, 12, 12), np.float32)), path)
    assert path.read_bytes() == proto.SerializeToString()
    imported = xo.load(path)
    mine = {k: xpnet.to_numpy(v) for k, v in model.state_dict().items()}
    for key, value in imported.state_dict().items():
        np.testing.assert_array_equal(xpnet.to_numpy(value), mine[key])
    assert set(imported.state_dict()) == {k for k in mine if not k.endswith("num_batches_tracked")}
    x = xpnet.asarray(np.random.default_rng(1).standard_normal((3, 1, 12, 12)), "float32")
    model.eval()
    np.testing.assert_allclose(xpnet.to_numpy(imported(x)), xpnet.to_numpy(model(x)),
                               rtol=1e-6, atol=1e-6)  # fmt: skip


def test_export_leaves_the_model_as_it_was() -> None:
    model = models.build_model("simple_cnn_bn", 1, 10, 8)
    model.train()
    before = dict(model.state_dict())
    xo.export(model, xpnet.asarray(np.zeros((2, 1, 8, 8), np.float32)))
    assert all(m.training for _, m in model.named_modules())
    after = model.state_dict()
    assert list(after) == list(before) and all(after[k] is before[k] for k in before)


def test_the_batch_is_fixed_with_a_warning_where_the_model_uses_it_as_a_number() -> None:
    x = xpnet.asarray(np.ones((4, 3, 2, 2), np.float32))
    symbolic = xo.export(Fn(lambda x: _ns(x).reshape(x, (x.shape[0], -1))), x)
    assert symbolic.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    with pytest.warns(UserWarning, match=r"fixed to the example's \(4\).*reshape"):
        fixed = xo.export(Fn(lambda x: _ns(x).reshape(x, (int(x.shape[0]), -1))), x)
    assert fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    session = ort.InferenceSession(fixed.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.ones((4, 3, 2, 2), np.float32)})[0].shape == (4, 12)


def test_what_cannot_be_exported_is_a_clear_error(tmp_path: Path) -> None:
    x = xpnet.asarray(np.ones((2, 3, 4, 4), np.float32))
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the previous model")
    cases = [
        (Fn(lambda x: x * 2 if float(_ns(x).sum(x)) > 0 else x), "reads a value computed"),
        (Fn(lambda x: F.cross_entropy(F.flatten(x, 1), _ns(x).zeros(2, dtype=_ns(x).int64))),
         "cross_entropy is not exported"),
        (Fn(lambda x: _ns(x).cumulative_sum(x, axis=1)), "xp.cumulative_sum is not exported"),
        (Fn(lambda x: F.dropout(x, 0.5, training=True)), "dropout with training=True"),
        (Fn(lambda x: F.max_pool2d(x, 2, return_indices=True)[0]), "return_indices"),
        (Fn(lambda x: x[:, :, :, x[0, 0, 0] > 0]), "boolean-mask"),
    ]  # fmt: skip
    for model, words in cases:
        with pytest.raises(xo.OnnxExportError, match=words):
            xo.export(model, x, path)
        assert path.read_bytes() == b"the previous model"  # never half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]

    def writes_in_place(x: Any) -> Any:
        x[0] = 0.0
        return x

    with pytest.raises(xo.OnnxExportError, match="in place"):
        xo.export(Fn(writes_in_place), x)
    model = _layer(nn.ReLU())
    for kwargs, error, words in [
        ({"opset": 12}, ValueError, "opset: expected an int from 13 to 21, got 12"),
        ({"opset": True}, ValueError, "opset"),
        ({"input_names": ["a", "b"]}, ValueError, "input_names: expected 1 non-empty"),
        ({"output_names": ["input"]}, ValueError, "also input names"),
        ({"metadata": {"k": 1}}, TypeError, "metadata: expected a mapping of str to str"),
    ]:
        with pytest.raises(error, match=words):
            xo.export(model, x, **kwargs)
    with pytest.raises(TypeError, match="example_input: expected an array, got list"):
        xo.export(model, [[1.0]])
    with pytest.raises(TypeError, match="model: expected an xpnet Module"):
        xo.export(lambda x: x, x)  # type: ignore[arg-type]


def test_several_inputs_and_outputs_are_named() -> None:
    class TwoInOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, a: Any, b: Any) -> Any:
            y = self.conv(a) + b
            return y, F.relu(y), a

    a = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((2, 2, 4, 4)).astype(np.float32)
    model = TwoInOut()
    proto = xo.export(model, (xpnet.asarray(a), xpnet.asarray(b)), input_names=["image", "bias"],
                      output_names=["sum", "relu", "same"])  # fmt: skip
    assert [i.name for i in proto.graph.input] == ["image", "bias"]
    assert [o.name for o in proto.graph.output] == ["sum", "relu", "same"]
    names = {n.name for n in proto.graph.node}
    assert any(name.startswith("/conv/Conv") for name in names)  # named after the module
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": a, "bias": b})
    expected = [xpnet.to_numpy(v) for v in model(xpnet.asarray(a), xpnet.asarray(b))]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=RTOL, atol=1e-6)


LIGHT_ZOO = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
             "shufflenet", "squeezenet", "vgg19", "zfnet512"]  # fmt: skip


@pytest.mark.skip_backends(
    "array_api_strict", "torch", "jax",
    reason="the graph is the same whichever backend traced it; imports are checked on every "
    "backend in test_onnx.py",
)  # fmt: skip
@pytest.mark.parametrize("name", LIGHT_ZOO)
def test_imported_zoo_graphs_export_back_with_onnxruntime_parity(
    backend: BackendCase, name: str
) -> None:
    from test_onnx import _randomized

    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"
    original = _randomized(path, seed=len(name))
    feed = next(i.name for i in original.graph.input
                if i.name not in {t.name for t in original.graph.initializer})  # fmt: skip
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    providers = ["CPUExecutionProvider"]
    expected = ort.InferenceSession(original.SerializeToString(), providers=providers).run(
        None, {feed: x}
    )[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exported = xo.export(xo.load(original), xpnet.asarray(x))
    # These graphs reshape to fixed shapes of batch 1 (their Reshape targets are constants):
    # the export says so and keeps that batch.
    for warning in caught:
        assert "batch dimension is fixed to the example's (1)" in str(warning.message)
    if caught:
        assert exported.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    got = ort.InferenceSession(exported.SerializeToString(), providers=providers).run(
        None, {"input": x}
    )[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert float(np.ptp(expected)) > 0.2 * float(np.mean(expected))  # a real check
    # Layers stay layers: as many convolutions as the original graph has.
    assert sum(n.op_type == "Conv" for n in exported.graph.node) == sum(
        n.op_type == "Conv" for n in original.graph.node
    )


def test_xpnet_export_writes_a_checkpoint_as_onnx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xpnet.cli import main
    from xpnet.train import Checkpoint, save_checkpoint

    model = models.build_model("simple_cnn_bn", 1, 10, 8)
    _randomize_statistics(model, seed=8)
    state = {k: np.asarray(xpnet.to_numpy(v)) for k, v in model.state_dict().items()}
    meta = {"model": "simple_cnn_bn", "in_channels": 1, "num_classes": 10, "image_size": 8,
            "normalisation": [0.3, 0.4], "source": "digits", "epoch": 1, "history": [{}]}  # fmt: skip
    weights = tmp_path / "w.safetensors"
    save_checkpoint(weights, Checkpoint(model=state, meta=meta))
    out = tmp_path / "w.onnx"
    assert main(["export", str(weights), str(out), "--opset", "18"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: simple_cnn_bn, opset 18" in printed
    assert "(batch, 1, 8, 8), normalised as in training: (x - 0.3) / 0.4" in printed
    proto = onnx.load(out)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["xpnet.normalisation"] == '{"mean": 0.3, "std": 0.4}'
    model.eval()
    _check_parity(model, proto, (1, 1, 8, 8), (1, 5), seed=9)
    # Refusals: an existing file without --overwrite, an opset outside the range, a folder.
    for args, words in [([str(out)], "exists; pass --overwrite"),
                        ([str(tmp_path / "new.onnx"), "--opset", "9"], "--opset: expected 13"),
                        ([str(tmp_path)], "is a folder")]:  # fmt: skip
        assert main(["export", str(weights), *args]) == 2
        assert words in capsys.readouterr().err
    assert main(["export", str(weights), str(out), "--overwrite"]) == 0


def test_a_float64_model_exports_in_double() -> None:
    model = models.build_model("lenet5", 1, 10, 28).double()
    x = xpnet.asarray(np.random.default_rng(0).standard_normal((2, 1, 28, 28)))
    proto = xo.export(model, x)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    # onnxruntime's CPU Conv has no double kernel; onnx's reference evaluator runs it.
    from onnx.reference import ReferenceEvaluator

    got = ReferenceEvaluator(proto).run(None, {"input": xpnet.to_numpy(x)})[0]
    np.testing.assert_allclose(got, xpnet.to_numpy(model(x)), rtol=1e-12, atol=1e-12)


MNIST = xpnet.data.find_mnist()


@pytest.mark.skipif(
    MNIST is None, reason="MNIST files not found (set XPNET_MNIST_DIR or ../shared/data/mnist)"
)
def test_an_exported_then_imported_resnet_fine_tunes_with_fit(backend: BackendCase) -> None:
    # A ResNet-style graph (residual adds, batch norms) written by export and read back by
    # load trains with fit on real MNIST digits exactly as the native model it came from,
    # and one epoch lowers its loss.
    from xpnet.data import DataLoader, Dataset, load_mnist

    assert MNIST is not None
    train, _ = load_mnist(MNIST)
    subset = Dataset(train.images[:1024], train.labels[:1024], num_classes=10)
    normalise = {"mean": xpnet.data.MNIST_MEAN, "std": xpnet.data.MNIST_STD}
    results = {}
    for kind in ("native", "imported"):
        xpnet.seed(0)
        model = models.build_model("resnet_small", 1, 10, 28)
        if kind == "imported":
            example = xpnet.asarray(np.zeros((1, 1, 28, 28), np.float32))
            model = xo.load(xo.export(model, example))
            assert {n.op_type for n in model.graph.nodes} >= {"Add", "BatchNormalization"}
        before = xpnet.evaluate(model, DataLoader(subset, batch_size=256, **normalise))
        loader = DataLoader(subset, batch_size=32, shuffle=True, **normalise)
        history = xpnet.fit(model, xpnet.optim.Adam(model, lr=3e-3), loader, 1, progress=False,
                            log=None)  # fmt: skip
        after = xpnet.evaluate(model, DataLoader(subset, batch_size=256, **normalise))
        results[kind] = (before["loss"], history[0]["loss"], after["loss"])
    np.testing.assert_allclose(results["imported"], results["native"], rtol=1e-4)
    before_loss, _, after_loss = results["imported"]
    assert after_loss < before_loss - 0.1, results


_P = np.linspace(-1.0, 1.0, 5).astype(np.float32)
_V = np.linspace(-1.0, 1.0, 4).astype(np.float32)
# What user code does with the batch size, and what the export must do: keep the batch
# symbolic and stay right at another batch size ("dynamic"), or fix it with a warning
# ("fixed"); never a graph that is silently wrong at another size.
BATCH_CASES: dict[str, tuple[Callable[[Any], Any], tuple[int, ...], str]] = {
    "reshape (N, -1)": (lambda x: _ns(x).reshape(x, (x.shape[0], -1)), (3, 4, 6), "dynamic"),
    "reshape (-1, C, H*W)": (lambda x: _ns(x).reshape(x, (-1, 4, 6)), (3, 4, 2, 3), "dynamic"),
    "reshape (N*T, -1)": (
        lambda x: _ns(x).reshape(x, (x.shape[0] * x.shape[1], -1)), (2, 4, 6), "fixed"),
    "reshape (int(N), -1)": (
        lambda x: _ns(x).reshape(x, (int(x.shape[0]), -1)), (3, 4, 6), "fixed"),
    "concat on the batch, then reshape by its size": (
        lambda x: (lambda y: _ns(y).reshape(y, (y.shape[0], -1)))(_ns(x).concat([x, 2 * x])),
        (2, 4, 6), "fixed"),
    "concat on the batch, then flatten": (
        lambda x: F.flatten(_ns(x).concat([x, 2 * x], axis=0), 1), (2, 4, 6), "dynamic"),
    "slice x[1:], then reshape by its size": (
        lambda x: (lambda y: _ns(y).reshape(y, (y.shape[0], 2, -1)))(x[1:]), (3, 4, 6),
        "fixed"),
    "matrix times vector, then reshape": (
        lambda x: (lambda z: _ns(z).reshape(z, (z.shape[0], -1)))(
            (x @ _ns(x).asarray(_V))[:, None]), (3, 4), "dynamic"),
    "variance with correction over the batch": (
        lambda x: _ns(x).var(x, axis=0, correction=1), (3, 4), "fixed"),
    "variance over other axes": (
        lambda x: _ns(x).std(x, axis=1, correction=1), (3, 4), "dynamic"),
    "mean over no axes": (
        lambda x: x - _ns(x).mean(x, axis=tuple(range(2, x.ndim)), keepdims=True), (3, 4),
        "dynamic"),
    "integer array against a float": (
        lambda x: _ns(x).astype(_ns(x).astype(x * 3, _ns(x).int64) >= 0.5, x.dtype), (3, 4),
        "dynamic"),
    "half the batch by slicing": (lambda x: x[: x.shape[0] // 2] * 2, (4, 3), "fixed"),
    "a loop over range(N)": (
        lambda x: _ns(x).stack([x[i] * i for i in range(x.shape[0])]), (3, 4), "fixed"),
    "a Python loop over the batch": (
        lambda x: _ns(x).stack([r * 2 for r in x]), (3, 4, 5), "fixed"),
    "a parameter broadcast to the batch (a class token)": (
        lambda x: _ns(x).concat([_ns(x).broadcast_to(_ns(x).asarray(_P)[None, None, :],
                                                     (x.shape[0], 1, 5)), x], axis=1),
        (2, 3, 5), "dynamic"),
    "a scalar output": (lambda x: _ns(x).mean(x) * 2.0, (3, 4), "dynamic"),
    "zeros of the batch's size": (
        lambda x: _ns(x).concat([x, _ns(x).zeros((x.shape[0], 2), dtype=x.dtype)], axis=1),
        (3, 4), "dynamic"),
    "zeros of twice the batch's size": (
        lambda x: _ns(x).zeros((2 * x.shape[0], 2), dtype=x.dtype) + 1.0 + 0 * x[:1, :2],
        (3, 4), "fixed"),
    "interpolate by 0.7 and 2.3": (
        lambda x: F.interpolate(x, scale_factor=(0.7, 2.3), mode="bilinear"), (2, 3, 10, 10),
        "dynamic"),
    "dilated max pool, ceil mode, pad beyond the kernel": (
        lambda x: F.max_pool2d(x, 2, 3, 1, dilation=3, ceil_mode=True), (2, 3, 11, 11),
        "dynamic"),
    "clip to array bounds": (
        lambda x: _ns(x).clip(x, _ns(x).asarray(-_V), _ns(x).asarray(_V)), (3, 4), "dynamic"),
    "dropout2d (evaluation)": (lambda x: F.dropout2d(x, 0.5, training=False), (2, 3, 4, 4),
                               "dynamic"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BATCH_CASES))
def test_shapes_built_from_the_batch_stay_right_or_fix_the_batch(name: str) -> None:
    fn, shape, expected = BATCH_CASES[name]
    model = Fn(fn)
    x = xpnet.asarray(np.random.default_rng(0).standard_normal(shape), "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proto = xo.export(model, x)
    fixed = [w for w in caught if "batch dimension is fixed" in str(w.message)]
    assert ("fixed" if fixed else "dynamic") == expected, [str(w.message) for w in caught]
    batches = (shape[0],) if fixed else (shape[0], shape[0] + 3)
    _check_parity(model, proto, shape, batches, seed=10)
    if fixed:
        assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == shape[0]


def test_integer_bitwise_operators_are_bitwise_from_opset_18() -> None:
    model = Fn(lambda x: _ns(x).astype((_ns(x).astype(x * 8, _ns(x).int64) & 3) | 4, x.dtype))
    x = xpnet.asarray(np.random.default_rng(0).standard_normal((3, 4)), "float32")
    proto = xo.export(model, x, opset=18)
    assert {"BitwiseAnd", "BitwiseOr"} <= {n.op_type for n in proto.graph.node}
    _check_parity(model, proto, (3, 4), (3, 5), seed=11)
    with pytest.raises(xo.OnnxExportError, match="needs opset 18 or later"):
        xo.export(model, x, opset=17)
