"""The model zoo against the same architectures written in torch (tests/torch_models.py):
state_dict layouts, logits in float64 on every backend, and a training step's gradients."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnet
import xpnet.functional as XF
from helpers import BackendCase, assert_close
from reference_nn import randomize_torch, torch_state
from xpnet import models

torch = pytest.importorskip("torch")
tm = pytest.importorskip("torch_models")


def _twin_logits(tmodel: Any, x: np.ndarray) -> np.ndarray:
    tmodel.eval()
    with torch.no_grad():
        return tmodel(torch.tensor(x)).numpy()


def _assert_relative(got: Any, want: np.ndarray, bound: float) -> None:
    error = np.max(np.abs(xpnet.to_numpy(got) - want)) / np.max(np.abs(want))
    assert error <= bound, f"relative error {error:.2e} above {bound:.0e}"


def _loaded(model: Any, tmodel: Any) -> Any:
    model = model.double()
    model.load_state_dict(torch_state(tmodel))
    return model.eval()


@pytest.mark.parametrize(
    ("name", "twin"),
    [
        ("resnet18", lambda: tm.ResNet(tm.BasicBlock, [2, 2, 2, 2], 10)),
        ("resnet50", lambda: tm.ResNet(tm.Bottleneck, [3, 4, 6, 3], 10)),
    ],
)
def test_imagenet_resnets_give_torchs_logits(backend: BackendCase, name: str, twin: Any) -> None:
    # Random weights and batch-norm statistics, inference mode, float64: the logits agree to
    # round-off (the target: relative error <= 1e-10).
    torch.manual_seed(0)
    tmodel = twin().double()
    randomize_torch(tmodel, seed=1)
    x = np.random.default_rng(2).normal(size=(2, 3, 64, 64))
    model = _loaded(getattr(models, name)(num_classes=10, rng=0), tmodel)
    logits = model(backend.asarray(x))
    backend.check_like(logits, backend.asarray(x))
    _assert_relative(logits, _twin_logits(tmodel, x), 1e-10)


@pytest.mark.parametrize(
    ("build", "twin", "shape"),
    [
        (lambda: models.mobilenet_v2(num_classes=7, rng=0), lambda: tm.MobileNetV2(7), (2, 3, 32, 32)),
        (lambda: models.vgg11_bn(num_classes=5, hidden=24, rng=0),
         lambda: tm.VGG(models._vgg.VGG11, 5, hidden=24), (2, 3, 32, 32)),
        (lambda: models.unet(3, 2, base_channels=4, rng=0), lambda: tm.UNet(3, 2, 4, False),
         (2, 3, 20, 28)),
        (lambda: models.unet(1, 3, base_channels=4, bilinear=True, rng=0),
         lambda: tm.UNet(1, 3, 4, True), (1, 1, 19, 26)),
        (lambda: models.resnet20(rng=0), lambda: tm.CifarResNet(3, 10), (2, 3, 16, 16)),
    ],
    ids=["mobilenet_v2", "vgg11_bn", "unet", "unet_bilinear", "resnet20"],
)  # fmt: skip
def test_zoo_models_give_torchs_outputs(
    backend: BackendCase, build: Any, twin: Any, shape: Any
) -> None:
    torch.manual_seed(0)
    tmodel = twin().double()
    randomize_torch(tmodel, seed=1)
    x = np.random.default_rng(3).normal(size=shape)
    out = _loaded(build(), tmodel)(backend.asarray(x))
    _assert_relative(out, _twin_logits(tmodel, x), 1e-10)


def test_resnet20_training_step_matches_torch_autograd(backend: BackendCase) -> None:
    torch.manual_seed(0)
    tmodel = tm.CifarResNet(3, 10).double()
    randomize_torch(tmodel, seed=4)
    initial = torch_state(tmodel)
    rng = np.random.default_rng(5)
    x, target = rng.normal(size=(4, 3, 12, 12)), rng.integers(0, 10, size=4)
    tmodel.train()
    tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(target))
    tgrads = torch.autograd.grad(tloss, list(tmodel.parameters()))
    expected = {n: g.numpy() for (n, _), g in zip(tmodel.named_parameters(), tgrads, strict=True)}
    model = models.resnet20(rng=0).double()
    model.load_state_dict(initial)
    loss, grads = xpnet.value_and_grad(
        model, XF.cross_entropy, backend.asarray(x), backend.asarray(target, "int64")
    )
    assert_close(loss, tloss.detach().numpy(), rtol=1e-10, atol=0)
    assert list(grads) == list(expected)
    for key, grad in grads.items():
        assert_close(grad, expected[key], rtol=1e-9, atol=1e-12)
    for key, value in model.state_dict().items():  # batch-norm statistics
        assert_close(value, torch_state(tmodel)[key], rtol=1e-10, atol=0)


def _layout(state: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(int(s) for s in value.shape)) for key, value in state.items()]


def test_zoo_state_dicts_have_the_torch_layouts() -> None:
    # Every key and shape, in order, at full size: torchvision's weights load as they are.
    # (torch builds its twins on the meta device: shapes without memory.)
    builders = [
        (lambda: models.resnet18(rng=0), lambda: tm.ResNet(tm.BasicBlock, [2, 2, 2, 2])),
        (lambda: models.resnet34(rng=0), lambda: tm.ResNet(tm.BasicBlock, [3, 4, 6, 3])),
        (lambda: models.resnet50(rng=0), lambda: tm.ResNet(tm.Bottleneck, [3, 4, 6, 3])),
        (lambda: models.mobilenet_v2(rng=0), lambda: tm.MobileNetV2()),
        (lambda: models.vgg11_bn(rng=0), lambda: tm.VGG(models._vgg.VGG11)),
        (lambda: models.resnet20(rng=0), lambda: tm.CifarResNet(3)),
        (lambda: models.unet(3, 2, base_channels=64, rng=0), lambda: tm.UNet(3, 2, 64, False)),
    ]
    for build, twin in builders:
        with torch.device("meta"):
            tmodel = twin()
        model = build()
        assert _layout(model.state_dict()) == _layout(tmodel.state_dict()), type(model).__name__
    assert models.resnet50(rng=0).num_parameters() == 25_557_032
    assert models.resnet20(rng=0).num_parameters() == 269_722


def test_build_model_knows_the_zoo() -> None:
    for name in ("resnet20", "resnet18", "mobilenet_v2"):
        model = models.build_model(name, 3, 10, 32, rng=0)
        assert model.architecture == name
        logits = model(xpnet.asarray(np.zeros((2, 3, 32, 32)), dtype="float32"))
        assert tuple(logits.shape) == (2, 10)
    with pytest.raises(
        ValueError, match=r"image_size: resnet18 needs images of at least 32x32, got 28x28"
    ):
        models.build_model("resnet18", 1, 10, 28)
    with pytest.raises(ValueError, match=r"model: unknown model 'resnet101'"):
        models.build_model("resnet101", 3, 10, 32)


def test_summary_counts_parameters_and_flops_as_the_torch_twin_does() -> None:
    # Independent count: torch forward hooks on the twin, 2 FLOPs per multiply-add of each
    # convolution and linear layer (the convention of the summary's FLOPs column).
    flops = []

    def hook(module: Any, inputs: Any, output: Any) -> None:
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * int(np.prod(module.kernel_size))
            flops.append(2 * output.numel() * per_output)
        elif isinstance(module, torch.nn.ConvTranspose2d):
            per_input = module.out_channels // module.groups * int(np.prod(module.kernel_size))
            flops.append(2 * inputs[0].numel() * per_input)
        elif isinstance(module, torch.nn.Linear):
            flops.append(2 * output.numel() * module.in_features)

    for model, tmodel, shape in (
        (models.resnet18(rng=0), tm.ResNet(tm.BasicBlock, [2, 2, 2, 2]), (1, 3, 64, 64)),
        (models.unet(3, 2, base_channels=4, rng=0), tm.UNet(3, 2, 4, False), (2, 3, 20, 28)),
    ):
        flops.clear()
        for module in tmodel.modules():
            module.register_forward_hook(hook)
        with torch.no_grad():
            tmodel.eval()(torch.zeros(shape))
        text = model.summary(shape)
        assert f"total FLOPs: {sum(flops):,} (" in text
        assert f"total parameters: {sum(p.numel() for p in tmodel.parameters()):,}" in text
    assert repr(text) == str(text)  # shows itself as the table at the prompt
