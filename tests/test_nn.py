"""xpnet.nn: layers, containers, init, state_dict, value_and_grad, against torch.nn.

torch is the oracle for layers: the torch layer's weights are loaded into the xpnet layer
through ``load_state_dict`` and outputs, gradients and buffers are compared in float64.
Initialisation is checked against its definitions (bounds, standard deviations) with
tolerances derived from the sample size.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import (
    BackendCase,
    assert_close,
    module_vjp,
    random_cotangent,
    to_numpy,
    tolerance,
)
from reference_nn import LAYER_CASES, LayerCase, randomize_torch, torch_state
from xpnet import models, nn

# --------------------------------------------------------------------------- helpers


def _torch() -> Any:
    return pytest.importorskip("torch")


def _fresh(case: LayerCase, state: dict[str, np.ndarray], training: bool) -> nn.Module:
    layer = case.xpnet("float64")
    layer.load_state_dict(state)
    layer.train(training)
    return layer


def _assert_state(model: nn.Module, expected: dict[str, np.ndarray], **tol: float) -> None:
    state = model.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert_close(state[key], value, **tol)
        # An array, not a NumPy scalar (NumPy's 0-d arithmetic returns those).
        assert array_api_compat.is_array_api_obj(state[key])
        assert not isinstance(state[key], np.generic), key


def _namespace_of(name: str) -> Any:
    with xpnet.use_backend(name):
        return xpnet.get_namespace()


# ------------------------------------------------------------- every layer vs torch


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.id)
def test_layer_matches_torch(backend: BackendCase, case: LayerCase, mode: str) -> None:
    torch = _torch()
    training = mode == "train"
    torch.manual_seed(0)
    tlayer = case.torch(torch)
    randomize_torch(tlayer, seed=1)
    tlayer.train(training)
    initial = torch_state(tlayer)

    rng = np.random.default_rng(2)
    x = rng.normal(size=case.input_shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = tlayer(xt)
    target = rng.normal(size=tuple(yt.shape))
    loss_t = torch.nn.functional.mse_loss(yt, torch.tensor(target), reduction="sum")
    loss_t.backward()
    after = torch_state(tlayer)
    expected_grads = {n: p.grad.numpy() for n, p in tlayer.named_parameters()}
    cotangent = 2.0 * (yt.detach().numpy() - target)  # d(sum of squares)/dy
    xb, tb = backend.asarray(x), backend.asarray(target)

    # Inference call: output and buffers (training mode updates batch-norm statistics).
    layer = _fresh(case, initial, training)
    y = layer(xb)
    backend.check_like(y, xb)
    assert_close(y, yt.detach().numpy())
    _assert_state(layer, after)

    # Pullback: input and parameter gradients.
    layer = _fresh(case, initial, training)
    y, pullback = module_vjp(layer, xb)
    assert_close(y, yt.detach().numpy())
    dx, grads = pullback(backend.asarray(cotangent))
    backend.check_like(dx, xb)
    assert_close(dx, xt.grad.numpy())
    assert set(grads) == set(expected_grads)
    for name, grad in grads.items():
        backend.check_like(grad, xb)
        assert_close(grad, expected_grads[name])
    _assert_state(layer, after)

    if training:
        layer = _fresh(case, initial, training)
        loss, grads = xpnet.value_and_grad(layer, F.mse_loss, xb, tb, reduction="sum")
        assert loss.shape == ()
        assert_close(loss, loss_t.detach().numpy())
        trainable = [k for k in layer.state_dict() if k in dict(layer.named_parameters())]
        assert list(grads) == trainable == list(expected_grads)
        for name, grad in grads.items():
            assert_close(grad, expected_grads[name])
        _assert_state(layer, after)


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.id)
def test_layer_float32(backend: BackendCase, case: LayerCase) -> None:
    torch = _torch()
    torch.manual_seed(0)
    tlayer = case.torch(torch).eval()
    randomize_torch(tlayer, seed=1)
    layer = case.xpnet("float32").eval()
    layer.load_state_dict(torch_state(tlayer))  # float64 host arrays into a float32 layer
    for value in layer.state_dict().values():
        assert str(value.dtype).endswith(("float32", "int64"))
    x = np.random.default_rng(3).normal(size=case.input_shape)
    xb = backend.asarray(x, "float32")
    y = layer(xb)
    backend.check_like(y, xb)
    assert_close(y, tlayer(torch.tensor(x)).detach().numpy(), **tolerance("float32"))
    y, pullback = module_vjp(layer, xb)
    dx, grads = pullback(backend.asarray(np.ones(tuple(y.shape)), "float32"))
    backend.check_like(dx, xb)
    for grad in grads.values():
        backend.check_like(grad, xb)


def test_batch_norm_running_statistics_over_steps(backend: BackendCase) -> None:
    torch = _torch()
    for momentum in (0.1, None):
        tlayer = torch.nn.BatchNorm2d(3, momentum=momentum).double()
        layer = nn.BatchNorm2d(3, momentum=momentum, dtype="float64")
        rng = np.random.default_rng(4)
        for step in range(3):
            x = rng.normal(loc=step, scale=1 + step, size=(5, 3, 2, 3))
            target = rng.normal(size=x.shape)
            tlayer.train()
            torch.nn.functional.mse_loss(tlayer(torch.tensor(x)), torch.tensor(target)).backward()
            xpnet.value_and_grad(layer, F.mse_loss, backend.asarray(x), backend.asarray(target))
        state = torch_state(tlayer)
        assert int(state["num_batches_tracked"]) == 3
        _assert_state(layer, state)
        assert str(layer.state_dict()["num_batches_tracked"].dtype).endswith("int64")
        x = rng.normal(size=(2, 3, 2, 2))
        layer.eval()
        assert_close(layer(backend.asarray(x)), tlayer.eval()(torch.tensor(x)).detach().numpy())
        _assert_state(layer, state)  # inference leaves the statistics alone


# ----------------------------------------------------------------------------- dropout


def test_dropout_mask_follows_its_definition(backend: BackendCase) -> None:
    # The documented mask: keep where rng.random(shape) >= p, scale kept values by 1/(1-p).
    p, shape = 0.3, (4, 3, 5)
    x = np.random.default_rng(0).normal(size=shape)
    keep = np.random.default_rng(5).random(size=shape) >= p
    layer = nn.Dropout(p, rng=5)
    y = layer(backend.asarray(x))
    backend.check_like(y, backend.asarray(x))
    assert_close(y, x * keep / (1 - p))
    # A recorded forward draws the next mask from the same generator and reuses it in the pullback.
    keep2 = np.random.default_rng(5)
    keep2.random(size=shape)
    mask2 = keep2.random(size=shape) >= p
    y, pullback = module_vjp(layer, backend.asarray(x))
    dy = random_cotangent(shape)
    dx, grads = pullback(backend.asarray(dy))
    assert grads == {}
    assert_close(y, x * mask2 / (1 - p))
    assert_close(dx, dy * mask2 / (1 - p))
    assert 0 < keep.sum() < keep.size


@pytest.mark.parametrize(
    ("layer_type", "shape"),
    [("Dropout1d", (3, 4, 6)), ("Dropout2d", (2, 5, 3, 3)), ("Dropout3d", (2, 4, 2, 2, 2))],
)
def test_channel_dropout_layers_drop_whole_channels(
    backend: BackendCase, layer_type: str, shape: tuple[int, ...]
) -> None:
    p = 0.5
    x = np.random.default_rng(2).normal(size=shape)
    layer = getattr(nn, layer_type)(p, rng=7)
    mask_shape = shape[:2] + (1,) * (len(shape) - 2)
    keep = np.random.default_rng(7).random(size=mask_shape) >= p
    assert 0 < keep.sum() < keep.size
    assert_close(layer(backend.asarray(x)), x * keep / (1 - p))
    layer.eval()
    y = layer(backend.asarray(x))
    assert_close(y, x, rtol=0, atol=0)


def test_dropout_same_mask_on_every_backend(backend: BackendCase) -> None:
    x = np.random.default_rng(1).normal(size=(3, 2, 4, 4))
    xpnet.seed(11)
    y = nn.Dropout(0.5)(backend.asarray(x))
    with xpnet.use_backend("numpy"):
        xpnet.seed(11)
        reference = nn.Dropout(0.5)(xpnet.asarray(x))
    np.testing.assert_array_equal(to_numpy(y), to_numpy(reference))
    assert np.any(to_numpy(y) == 0) and np.any(to_numpy(y) != 0)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_dropout_eval_and_extremes_match_torch(backend: BackendCase, p: float) -> None:
    torch = _torch()
    x = np.random.default_rng(2).normal(size=(3, 4))
    layer, tlayer = nn.Dropout(p, rng=0), torch.nn.Dropout(p)
    assert_close(layer.eval()(backend.asarray(x)), tlayer.eval()(torch.tensor(x)).numpy())
    if p in (0.0, 1.0):  # deterministic in training mode too
        assert_close(layer.train()(backend.asarray(x)), tlayer.train()(torch.tensor(x)).numpy())


# ---------------------------------------------------------------- LeNet-5 and ResNet


def _torch_lenet(torch: Any) -> Any:
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 6, 5, padding=2),
        t.ReLU(),
        t.MaxPool2d(2),
        t.Conv2d(6, 16, 5),
        t.ReLU(),
        t.MaxPool2d(2),
        t.Flatten(),
        t.Linear(400, 120),
        t.ReLU(),
        t.Linear(120, 84),
        t.ReLU(),
        t.Linear(84, 10),
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_lenet5_loads_and_gives_the_same_logits(backend: BackendCase, dtype: str) -> None:
    torch = _torch()
    torch.manual_seed(0)
    tnet = _torch_lenet(torch).to(getattr(torch, dtype)).eval()
    model = models.lenet5(dtype=dtype, rng=1)
    assert list(model.state_dict()) == list(tnet.state_dict())
    model.load_state_dict({k: v.numpy() for k, v in tnet.state_dict().items()})
    x = np.random.default_rng(0).normal(size=(2, 1, 28, 28)).astype(dtype)
    xb = backend.asarray(x, dtype)
    logits = model(xb)
    backend.check_like(logits, xb)
    expected = tnet(torch.tensor(x)).detach().numpy()
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-13}
    assert_close(logits, expected, **tol)


def test_lenet5_gradients_and_export_to_torch(backend: BackendCase) -> None:
    torch = _torch()
    model = models.lenet5(dtype="float64", rng=3)
    # Export: xpnet weights load into torch (both directions use the same keys).
    tnet = _torch_lenet(torch).double()
    tnet.load_state_dict({k: torch.tensor(to_numpy(v)) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(1)
    x, labels = rng.normal(size=(2, 1, 28, 28)), np.array([3, 1])
    loss_t = torch.nn.functional.cross_entropy(tnet(torch.tensor(x)), torch.tensor(labels))
    loss_t.backward()
    loss, grads = xpnet.value_and_grad(
        model, F.cross_entropy, backend.asarray(x), backend.asarray(labels)
    )
    assert_close(loss, loss_t.item(), rtol=1e-12)
    assert list(grads) == [n for n, _ in tnet.named_parameters()]
    for name, p in tnet.named_parameters():
        assert_close(grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-12)


def _xpnet_resnet(dtype: str) -> nn.Sequential:
    def bn(c: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(c, dtype=dtype)

    down = nn.Residual(
        nn.Sequential(
            nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False, dtype=dtype, rng=0),
            bn(4),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1, bias=False, dtype=dtype, rng=1),
            bn(4),
        ),
        nn.Sequential(nn.Conv2d(3, 4, 1, stride=2, bias=False, dtype=dtype, rng=2), bn(4)),
    )
    same = nn.Residual(
        nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1, bias=False, dtype=dtype, rng=3),
            bn(4),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1, bias=False, dtype=dtype, rng=4),
            bn(4),
        )
    )
    return nn.Sequential(down, nn.ReLU(), same, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _torch_resnet(torch: Any) -> Any:
    t = torch.nn

    class Residual(t.Module):  # the usual hand-written block, named like xpnet's
        def __init__(self, body: Any, shortcut: Any = None) -> None:
            super().__init__()
            self.body = body
            if shortcut is not None:
                self.shortcut = shortcut

        def forward(self, x: Any) -> Any:
            skip = self.shortcut(x) if hasattr(self, "shortcut") else x
            return self.body(x) + skip

    def block(c_in: int, stride: int) -> Any:
        return t.Sequential(
            t.Conv2d(c_in, 4, 3, stride=stride, padding=1, bias=False),
            t.BatchNorm2d(4),
            t.ReLU(),
            t.Conv2d(4, 4, 3, padding=1, bias=False),
            t.BatchNorm2d(4),
        )

    down = Residual(
        block(3, 2), t.Sequential(t.Conv2d(3, 4, 1, stride=2, bias=False), t.BatchNorm2d(4))
    )
    same = Residual(block(4, 1))
    return t.Sequential(
        down, t.ReLU(), same, t.ReLU(), t.AdaptiveAvgPool2d(1), t.Flatten()
    ).double()


def test_residual_blocks_with_batch_norm_match_torch(backend: BackendCase) -> None:
    torch = _torch()
    torch.manual_seed(0)
    tnet = _torch_resnet(torch)
    randomize_torch(tnet, seed=3)
    model = _xpnet_resnet("float64")
    assert list(model.state_dict()) == list(tnet.state_dict())
    model.load_state_dict(torch_state(tnet))
    rng = np.random.default_rng(5)
    for _ in range(2):  # two training steps: batch statistics, gradients, running statistics
        x, target = rng.normal(size=(3, 3, 6, 5)), rng.normal(size=(3, 4))
        tnet.train()
        tnet.zero_grad()
        loss_t = torch.nn.functional.mse_loss(tnet(torch.tensor(x)), torch.tensor(target))
        loss_t.backward()
        loss, grads = xpnet.value_and_grad(
            model, F.mse_loss, backend.asarray(x), backend.asarray(target)
        )
        assert_close(loss, loss_t.item())
        assert list(grads) == [n for n, _ in tnet.named_parameters()]
        for name, p in tnet.named_parameters():
            assert_close(grads[name], p.grad.numpy())
        _assert_state(model, torch_state(tnet))
    x = rng.normal(size=(2, 3, 6, 5))
    model.eval()
    assert_close(model(backend.asarray(x)), tnet.eval()(torch.tensor(x)).detach().numpy())


def test_residual_shape_mismatch_names_both_shapes(backend: BackendCase) -> None:
    block = nn.Residual(nn.Conv2d(2, 3, 1, rng=0))
    with pytest.raises(ValueError, match=r"body output \(1, 3, 4, 4\).*\(1, 2, 4, 4\)"):
        block(backend.asarray(np.zeros((1, 2, 4, 4)), "float32"))


# -------------------------------------------------------------------------------- init


def _sample_std_tolerance(n: int, kind: str, sigma: float) -> float:
    """Five standard errors of the sample standard deviation of n draws.

    For a sample variance s^2, Var(s^2) = (mu4 - sigma^4) / n; with mu4 = 3 sigma^4 (normal)
    or 9/5 sigma^4 (uniform), and s ~ sqrt(s^2), the standard error of s is
    sqrt(mu4 / sigma^4 - 1) * sigma / (2 sqrt(n)).
    """
    kurtosis = 3.0 if kind == "normal" else 9.0 / 5.0
    return 5.0 * math.sqrt(kurtosis - 1.0) * sigma / (2.0 * math.sqrt(n))


def _check_uniform(values: np.ndarray, bound: float) -> None:
    n = values.size
    assert np.all(np.abs(values) <= bound)
    # P(max |w| < bound (1 - t)) = (1 - t)^n; t = 30 / n makes that e^-30.
    assert np.max(np.abs(values)) >= bound * (1 - 30.0 / n)
    sigma = bound / math.sqrt(3.0)
    assert abs(values.mean()) <= 5 * sigma / math.sqrt(n)
    assert abs(values.std() - sigma) <= _sample_std_tolerance(n, "uniform", sigma)


def _check_normal(values: np.ndarray, std: float) -> None:
    n = values.size
    assert abs(values.mean()) <= 5 * std / math.sqrt(n)
    assert abs(values.std() - std) <= _sample_std_tolerance(n, "normal", std)


INIT_SHAPE = (64, 32, 3, 3)  # fan_in 288, fan_out 576, 18,432 values


def test_init_bounds_and_standard_deviations(backend: BackendCase) -> None:
    fan_in, fan_out = 32 * 9, 64 * 9
    assert nn.init.fans(INIT_SHAPE) == (fan_in, fan_out)
    init = nn.init
    for mode, fan in (("fan_in", fan_in), ("fan_out", fan_out)):
        w = init.kaiming_uniform(INIT_SHAPE, mode=mode, nonlinearity="relu", rng=0, dtype="float64")
        _check_uniform(to_numpy(w), math.sqrt(2.0) * math.sqrt(3.0 / fan))
        w = init.kaiming_normal(INIT_SHAPE, mode=mode, nonlinearity="relu", rng=1, dtype="float64")
        _check_normal(to_numpy(w), math.sqrt(2.0 / fan))
    a = 0.2
    w = init.kaiming_uniform(INIT_SHAPE, a=a, rng=2, dtype="float64")  # leaky_relu gain
    _check_uniform(to_numpy(w), math.sqrt(2.0 / (1 + a * a)) * math.sqrt(3.0 / fan_in))
    for gain in (1.0, 5.0 / 3.0):
        w = init.glorot_uniform(INIT_SHAPE, gain=gain, rng=3, dtype="float64")
        _check_uniform(to_numpy(w), gain * math.sqrt(6.0 / (fan_in + fan_out)))
        w = init.xavier_normal(INIT_SHAPE, gain=gain, rng=4, dtype="float64")
        _check_normal(to_numpy(w), gain * math.sqrt(2.0 / (fan_in + fan_out)))
    w = init.uniform((200, 100), -0.5, 2.0, rng=5, dtype="float64")
    values = to_numpy(w)
    assert values.min() >= -0.5 and values.max() <= 2.0
    _check_uniform(values - 0.75, 1.25)
    w = init.normal((200, 100), 3.0, 0.5, rng=6, dtype="float64")
    _check_normal(to_numpy(w) - 3.0, 0.5)
    with xpnet.use_backend(backend.name, backend.device):
        reference = xpnet.asarray([0.0], dtype="float32")
    for dtype in ("float32", "float64"):
        w = init.kaiming_normal((3, 2), rng=0, dtype=dtype)
        assert array_api_compat.array_namespace(w) is backend.xp
        assert str(w.dtype).endswith(dtype)
        assert array_api_compat.device(w) == array_api_compat.device(reference)


def test_default_layer_init_is_torchs(backend: BackendCase) -> None:
    # Kaiming-uniform with a = sqrt(5) is U(+-1/sqrt(fan_in)); the bias uses the same bound.
    conv = nn.Conv2d(32, 64, 3, dtype="float64", rng=0)
    _check_uniform(to_numpy(conv.weight), 1.0 / math.sqrt(32 * 9))
    assert np.all(np.abs(to_numpy(conv.bias)) <= 1.0 / math.sqrt(32 * 9))
    linear = nn.Linear(300, 100, dtype="float64", rng=1)
    _check_uniform(to_numpy(linear.weight), 1.0 / math.sqrt(300))
    bias = to_numpy(linear.bias)
    assert np.all(np.abs(bias) <= 1.0 / math.sqrt(300)) and np.std(bias) > 0
    bn = nn.BatchNorm2d(5)
    state = {k: to_numpy(v) for k, v in bn.state_dict().items()}
    assert list(state) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    np.testing.assert_array_equal(state["weight"], np.ones(5))
    np.testing.assert_array_equal(state["bias"], np.zeros(5))
    np.testing.assert_array_equal(state["running_mean"], np.zeros(5))
    np.testing.assert_array_equal(state["running_var"], np.ones(5))
    assert state["num_batches_tracked"].shape == () and int(state["num_batches_tracked"]) == 0
    for name, value in bn.state_dict().items():
        assert array_api_compat.array_namespace(value) is backend.xp
        assert str(value.dtype).endswith("int64" if name == "num_batches_tracked" else "float32")


def test_calculate_gain_matches_torch() -> None:
    torch = _torch()
    for name, param in [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("selu", None),
    ]:
        assert nn.init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param), rel=1e-15
        )
    with pytest.raises(ValueError, match="nonlinearity: expected one of .* got 'swish'"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got \(5,\)"):
        nn.init.kaiming_uniform((5,))


def test_same_seed_same_model_on_every_backend(backend: BackendCase) -> None:
    def build() -> dict[str, np.ndarray]:
        model = models.resnet_small(in_channels=1, num_classes=10)
        return {k: to_numpy(v) for k, v in model.state_dict().items()}

    xpnet.seed(7)
    here = build()
    xpnet.seed(7)
    again = build()
    with xpnet.use_backend("numpy"):
        xpnet.seed(7)
        reference = build()
        by_rng = {k: to_numpy(v) for k, v in models.lenet5(rng=3).state_dict().items()}
    lenet_here = {k: to_numpy(v) for k, v in models.lenet5(rng=3).state_dict().items()}
    for left, right in ((here, reference), (again, reference), (lenet_here, by_rng)):
        assert list(left) == list(right)
        for key in left:
            np.testing.assert_array_equal(left[key], right[key], err_msg=key)
    xpnet.seed(8)
    other = build()
    assert not np.array_equal(other["0.weight"], here["0.weight"])


# -------------------------------------------------------------------------- state_dict


def _small_model(dtype: str = "float32") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, dtype=dtype, rng=0),
        nn.BatchNorm2d(3, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 5, dtype=dtype, rng=1),
    )


def test_state_dict_round_trip(backend: BackendCase) -> None:
    model = _small_model("float64")
    x = backend.asarray(np.random.default_rng(0).normal(size=(4, 1, 4, 4)))
    xpnet.value_and_grad(model, F.cross_entropy, x, backend.asarray(np.array([0, 1, 2, 3])))
    model.eval()
    saved = {k: xpnet.to_numpy(v) for k, v in model.state_dict().items()}
    assert list(saved) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "5.weight",
        "5.bias",
    ]
    copy = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, dtype="float64", rng=5),
        nn.BatchNorm2d(3, dtype="float64"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 5, dtype="float64", rng=6),
    ).eval()
    assert copy.load_state_dict(saved) == ([], [])
    for key, value in copy.state_dict().items():
        np.testing.assert_array_equal(xpnet.to_numpy(value), saved[key])
        assert array_api_compat.array_namespace(value) is backend.xp
    np.testing.assert_array_equal(to_numpy(copy(x)), to_numpy(model(x)))
    # Arrays of the backend itself load too.
    other = _small_model("float64").eval()
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(to_numpy(other(x)), to_numpy(model(x)))


def test_load_keeps_each_arrays_dtype(backend: BackendCase) -> None:
    model = _small_model("float32")
    state = {
        k: np.random.default_rng(0).normal(size=np.shape(xpnet.to_numpy(v)))
        for k, v in model.state_dict().items()
    }
    state["1.num_batches_tracked"] = np.array(4, dtype=np.int64)
    state["1.running_var"] = np.abs(state["1.running_var"])
    model.load_state_dict(state)
    for key, value in model.state_dict().items():
        assert array_api_compat.array_namespace(value) is backend.xp
        wanted = "int64" if key.endswith("num_batches_tracked") else "float32"
        assert str(value.dtype).endswith(wanted), key
        assert_close(value, state[key], **tolerance("float32"))


def test_load_torch_tensors_directly(backend: BackendCase) -> None:
    torch = _torch()
    tnet = _torch_lenet(torch)
    model = models.lenet5(rng=0)
    model.load_state_dict(tnet.state_dict())  # torch tensors, not NumPy
    for key, value in tnet.state_dict().items():
        assert_close(model.state_dict()[key], value.numpy(), rtol=0, atol=0)


def test_state_dict_of_another_architecture_names_keys_and_shapes(backend: BackendCase) -> None:
    model = models.lenet5(rng=0)
    before = {k: to_numpy(v) for k, v in model.state_dict().items()}
    other = {k: xpnet.to_numpy(v) for k, v in models.simple_cnn(image_size=28).state_dict().items()}
    with pytest.raises(nn.StateDictError, match=r"missing keys: 9\.weight \(84, 120\)") as info:
        model.load_state_dict(other)
    message = str(info.value)
    assert "unexpected keys" not in message and "11.bias (10,)" in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    extra = {k: to_numpy(v) for k, v in model.state_dict().items()}
    extra["12.weight"] = np.zeros((2, 3))
    with pytest.raises(KeyError, match=r"unexpected keys: 12\.weight \(2, 3\)"):
        model.load_state_dict(extra)
    # Same keys, other shapes: every mismatch with both shapes.
    with pytest.raises(
        ValueError,
        match=r"0\.weight: state_dict has \(16, 1, 3, 3\), model has \(6, 1, 5, 5\); "
        r"0\.bias: state_dict has \(16,\), model has \(6,\)",
    ):
        model.load_state_dict(other, strict=False)
    fewer = dict(before)
    del fewer["11.bias"]
    fewer["11.weight"] = np.zeros((10, 84), dtype=np.float32)
    assert model.load_state_dict(fewer, strict=False) == (["11.bias"], [])
    assert np.all(to_numpy(model.state_dict()["11.weight"]) == 0)
    # A failed load leaves the model as it was.
    broken = dict(before)
    broken["3.bias"] = np.zeros(7)
    with pytest.raises(ValueError, match=r"3\.bias: state_dict has \(7,\), model has \(16,\)"):
        model.load_state_dict(broken)
    np.testing.assert_array_equal(to_numpy(model.state_dict()["0.weight"]), before["0.weight"])


@pytest.mark.parametrize("target", ["numpy", "array_api_strict", "torch", "jax"])
def test_to_moves_every_array(backend: BackendCase, target: str) -> None:
    if target not in xpnet.available_backends():
        pytest.skip(f"{target} is not available here")
    model = _small_model("float32").eval()
    x = np.random.default_rng(0).normal(size=(2, 1, 4, 4))
    before = to_numpy(model(backend.asarray(x, "float32")))
    assert model.to(target, dtype="float64") is model
    xp = _namespace_of(target)
    for key, value in model.state_dict().items():
        assert array_api_compat.array_namespace(value) is xp, key
        wanted = "int64" if key.endswith("num_batches_tracked") else "float64"
        assert str(value.dtype).endswith(wanted), key
    with xpnet.use_backend(target):
        after = model(xpnet.asarray(x, dtype="float64"))
    assert array_api_compat.array_namespace(after) is xp
    assert_close(after, before, **tolerance("float32"))
    model.to(backend.name, backend.device, dtype="float32")
    for value in model.state_dict().values():
        assert array_api_compat.array_namespace(value) is backend.xp
    assert_close(model(backend.asarray(x, "float32")), before, **tolerance("float32"))
    with pytest.raises(ValueError, match="dtype: expected 'float32', 'float64' or None"):
        model.to(dtype="float16")


def test_summary_lists_shapes_and_parameter_counts(backend: BackendCase) -> None:
    model = models.lenet5()
    model.train()
    text = model.summary((2, 1, 28, 28))

    def conv(c_in: int, c_out: int, k: int) -> int:
        return c_out * c_in * k * k + c_out

    def linear(n_in: int, n_out: int) -> int:
        return n_out * n_in + n_out

    # Output sizes from (size + 2 padding - kernel) // stride + 1.
    side1 = (28 + 2 * 2 - 5) + 1
    side2 = side1 // 2 - 5 + 1

    def flops(shape: tuple[int, ...], per_output: int) -> int:  # 2 per multiply-add
        return 2 * int(np.prod(shape)) * per_output

    flat = 16 * (side2 // 2) ** 2
    expected = [
        ("Conv2d", (2, 6, side1, side1), conv(1, 6, 5), flops((2, 6, side1, side1), 25)),
        ("ReLU", (2, 6, side1, side1), 0, None),
        ("MaxPool2d", (2, 6, side1 // 2, side1 // 2), 0, None),
        ("Conv2d", (2, 16, side2, side2), conv(6, 16, 5), flops((2, 16, side2, side2), 150)),
        ("ReLU", (2, 16, side2, side2), 0, None),
        ("MaxPool2d", (2, 16, side2 // 2, side2 // 2), 0, None),
        ("Flatten", (2, flat), 0, None),
        ("Linear", (2, 120), linear(400, 120), flops((2, 120), 400)),
        ("ReLU", (2, 120), 0, None),
        ("Linear", (2, 84), linear(120, 84), flops((2, 84), 120)),
        ("ReLU", (2, 84), 0, None),
        ("Linear", (2, 10), linear(84, 10), flops((2, 10), 84)),
    ]
    rows = {line.split()[0]: line for line in text.splitlines() if line and line[0].isdigit()}
    assert len(rows) == len(expected)
    for index, (kind, shape, count, work) in enumerate(expected):
        cells = rows[str(index)].split(None, 2)
        assert cells[1] == kind
        assert cells[2].startswith(str(shape))
        numbers = [f"{count:,}"] + ([] if work is None else [f"{work:,}"])
        assert cells[2][len(str(shape)) :].split() == numbers
    total = sum(row[2] for row in expected)
    total_flops = sum(row[3] or 0 for row in expected)
    assert total == model.num_parameters() == 61706
    assert text.splitlines()[-2] == f"total parameters: {total:,}"
    assert text.splitlines()[-1].startswith(f"total FLOPs: {total_flops:,} (")
    assert model.training  # the mode is restored
    assert all(line == line.rstrip() for line in text.splitlines())


def test_summary_of_nested_blocks_keeps_statistics(backend: BackendCase) -> None:
    model = models.resnet_small()
    before = {k: to_numpy(v) for k, v in model.state_dict().items()}
    text = model.summary((1, 1, 8, 8))
    assert "Residual" in text and "(1, 16, 8, 8)" in text and "(1, 10)" in text
    block = 16 * 16 * 9 * 2 + 2 * (16 * 2)  # two bias-free 3x3 convs and two batch norms
    assert f"{block:,}" in text
    total = 16 * 9 + 2 * 16 + 2 * block + 16 * 10 + 10
    assert f"total parameters: {total:,}" in text and model.num_parameters() == total
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(to_numpy(value), before[key])
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d\).*input has 3"):
        model.summary((1, 3, 8, 8))


# --------------------------------------------------------------------- modules, errors


def test_wrong_input_shape_names_layer_and_shapes(backend: BackendCase) -> None:
    model = models.lenet5()
    with pytest.raises(
        ValueError, match=r"layer 7 \(Linear\).*in_features=400.*input shape \(2, 576\)"
    ):
        model(backend.asarray(np.zeros((2, 1, 32, 32)), "float32"))
    with pytest.raises(
        ValueError, match=r"layer 0 \(Conv2d\).*expects 1 input channels.*\(2, 3, 28, 28\)"
    ):
        xpnet.value_and_grad(
            model,
            F.cross_entropy,
            backend.asarray(np.zeros((2, 3, 28, 28)), "float32"),
            backend.asarray(np.array([0, 1])),
        )
    nested = nn.Sequential(nn.Residual(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3))))
    with pytest.raises(
        ValueError,
        match=r"layer 0 \(Residual\): body: layer 1 \(BatchNorm2d\): input: expected a "
        r"\(N, 3, H, W\) array, got shape \(2, 4, 5, 5\)",
    ):
        nested(backend.asarray(np.zeros((2, 4, 5, 5)), "float32"))
    with pytest.raises(TypeError, match=r"layer 0 \(Conv2d\).*dtype"):
        model(backend.asarray(np.zeros((1, 1, 28, 28)), "float64"))


def test_value_and_grad_errors_and_mode(backend: BackendCase) -> None:
    model = _small_model("float64")
    x = backend.asarray(np.random.default_rng(0).normal(size=(4, 1, 4, 4)))
    target = backend.asarray(np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"scalar \(0-d\) loss, got shape \(4,\)"):
        xpnet.value_and_grad(model, F.cross_entropy, x, target, reduction="none")
    with pytest.raises(ValueError, match=r"scalar \(0-d\) loss, got shape \(4, 5\)"):
        xpnet.value_and_grad(model, lambda y, t: y, x, target)
    model.eval()
    xpnet.value_and_grad(model, F.cross_entropy, x, target)
    assert not model.training and not model[1].training  # mode restored ...
    # ... after a training pass; the failed calls left the statistics alone.
    assert int(xpnet.to_numpy(model.state_dict()["1.num_batches_tracked"])) == 1


def test_module_containers_and_repr() -> None:
    model = _small_model()
    assert len(model) == 6 and isinstance(model[0], nn.Conv2d) and isinstance(model[-1], nn.Linear)
    head = model[:2]
    assert isinstance(head, nn.Sequential) and head[0] is model[0]
    assert list(head.state_dict()) == [k for k in model.state_dict() if k[0] in "01"]
    assert [type(m).__name__ for m in model] == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "MaxPool2d",
        "Flatten",
        "Linear",
    ]
    text = repr(model)
    assert "(0): Conv2d(1, 3, kernel_size=(3, 3)" in text and "(5): Linear(in_features=12" in text
    assert model.train(False) is model and not model[1].training
    assert model.num_parameters() == 3 * 9 + 3 + 3 + 3 + 12 * 5 + 5
    with pytest.raises(ValueError, match="groups: in_channels .4. and out_channels .6."):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="dtype: expected 'float32' or 'float64', got 'int8'"):
        nn.Linear(2, 3, dtype="int8")
    with pytest.raises(ValueError, match=r"p: expected a probability in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(TypeError, match="expected an xpnet Module, got int"):
        nn.Sequential(3)  # type: ignore[arg-type]


def test_softmax_implicit_dim_follows_torch(backend: BackendCase) -> None:
    torch = _torch()
    for shape in [(5,), (2, 5), (3, 2, 4), (2, 3, 2, 2)]:
        x = np.random.default_rng(0).normal(size=shape)
        with pytest.warns(UserWarning, match="implicit dimension"):
            y = nn.Softmax()(backend.asarray(x))
        with pytest.warns(UserWarning, match="Implicit dimension"):
            expected = torch.nn.Softmax()(torch.tensor(x)).numpy()
        assert_close(y, expected)


def test_max_pool_return_indices(backend: BackendCase) -> None:
    torch = _torch()
    x = np.random.default_rng(0).normal(size=(2, 3, 6, 6))
    y, indices = nn.MaxPool2d(2, 2, 0, 1, True)(backend.asarray(x))
    ty, tindices = torch.nn.MaxPool2d(2, 2, 0, 1, True)(torch.tensor(x))
    assert_close(y, ty.numpy())
    np.testing.assert_array_equal(xpnet.to_numpy(indices), tindices.numpy())
    # Differentiable as well: the output carries the gradient, the indices none.
    dy = random_cotangent(tuple(ty.shape))
    layer = nn.MaxPool2d(2, 2, 0, 1, True)

    def loss(inputs):
        out, idx = layer(inputs)
        assert out.requires_grad and not idx.requires_grad
        return array_api_compat.array_namespace(out).sum(out * backend.asarray(dy))

    xt = torch.tensor(x, requires_grad=True)
    (torch.nn.MaxPool2d(2, 2)(xt) * torch.tensor(dy)).sum().backward()
    assert_close(xpnet.grad(loss)(backend.asarray(x)), xt.grad.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_factory_arguments_place_parameters(backend: BackendCase, dtype: str) -> None:
    reference = backend.asarray(np.zeros(1), dtype)
    layers = [
        nn.Conv2d(2, 3, 3, device=backend.device, dtype=dtype, rng=0),
        nn.Linear(4, 2, device=backend.device, dtype=dtype, rng=0),
        nn.BatchNorm2d(3, device=backend.device, dtype=dtype),
    ]
    for layer in layers:
        for key, value in layer.state_dict().items():
            if key == "num_batches_tracked":
                assert array_api_compat.array_namespace(value) is backend.xp
                assert str(value.dtype).endswith("int64")
            else:
                backend.check_like(value, reference)
    with pytest.raises(TypeError, match="expected an xpnet Module, got function"):
        nn.Residual(lambda x: x)  # type: ignore[arg-type]


def test_the_inputs_gradient_is_computed_only_when_asked(backend, monkeypatch) -> None:
    # The batch carries no gradient, so conv2d's rule is asked for its weight and bias
    # gradients only (it skips the input's); differentiating with respect to the input
    # asks for all three.
    from xpnet.functional._autodiff import _rules

    entry = _rules._RULES[F.conv2d]
    asked: list[frozenset[str]] = []

    def spy(*args, needs, **kwargs):
        asked.append(needs)
        return entry.rule(*args, needs=needs, **kwargs)

    monkeypatch.setitem(
        _rules._RULES, F.conv2d, _rules._RuleEntry(spy, entry.parameters, entry.wrt, True)
    )
    xpnet.seed(3)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, dtype="float64"),
        nn.ReLU(),
        nn.Conv2d(3, 1, 3, bias=False, dtype="float64"),
    )
    x = backend.asarray(np.random.default_rng(0).normal(size=(2, 2, 5, 5)))
    target = backend.asarray(np.random.default_rng(1).normal(size=(2, 1, 3, 3)))
    _, grads = xpnet.value_and_grad(model, F.mse_loss, x, target)
    assert asked == [frozenset({"weight", "bias"}), frozenset({"input", "weight"})]
    assert list(grads) == ["0.weight", "0.bias", "2.weight"]
    asked.clear()
    dx = xpnet.grad(lambda inputs: F.mse_loss(model(inputs), target))(x)
    assert asked == [frozenset({"input"}), frozenset({"input"})]
    assert tuple(dx.shape) == (2, 2, 5, 5)


def test_a_module_defining_forward_vjp_is_told_it_is_not_used() -> None:
    with pytest.warns(UserWarning, match="forward_vjp is not used"):

        class Doubler(nn.Module):  # written for the hand-written pullbacks of old
            def forward(self, x):
                return 2 * x

            def forward_vjp(self, x):
                return 2 * x, lambda dy: (2 * dy, {})

    model = nn.Sequential(Doubler(), nn.Flatten())
    x = xpnet.asarray(np.ones((1, 2, 2, 2)))
    dx = xpnet.grad(lambda inputs: array_api_compat.array_namespace(inputs).sum(model(inputs)))(x)
    np.testing.assert_array_equal(xpnet.to_numpy(dx), np.full((1, 2, 2, 2), 2.0))
