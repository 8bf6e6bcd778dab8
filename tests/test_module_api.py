"""The parts of torch.nn.Module a ported model uses: traversal with torch's names and
results, ``apply``, ``to`` in torch's forms, ``ModuleList`` / ``ModuleDict``, and modules
called with several arguments. Each is compared with torch's own behaviour where torch is
installed."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import BackendCase, assert_close, to_numpy
from xpnet import nn


def _build(lib: Any) -> Any:
    """The same small model in torch or xpnet: a shared block reached under two names."""

    class Up(lib.Module):  # called with two inputs, as U-Net's Up(x1, x2)
        def __init__(self) -> None:
            super().__init__()
            self.conv = lib.Conv2d(4, 2, 1)

        def forward(self, low: Any, skip: Any) -> Any:
            xp = array_api_compat.array_namespace(low, skip)
            return self.conv(xp.concat([low, skip], axis=1))

    class Net(lib.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = lib.Conv2d(1, 2, 3, padding=1)
            self.blocks = lib.ModuleList([lib.BatchNorm2d(2), lib.ReLU()])
            self.heads = lib.ModuleDict({"up": Up(), "out": lib.Conv2d(2, 1, 1)})
            self.again = self.blocks[0]  # the same module under a second name

        def forward(self, x: Any) -> Any:
            h = self.stem(x)
            for block in self.blocks:
                h = block(h)
            return self.heads["out"](self.heads["up"](h, h))

    return Net()


def test_traversal_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    model, tmodel = _build(nn), _build(torch.nn)
    assert [n for n, _ in model.named_modules()] == [n for n, _ in tmodel.named_modules()]
    assert [type(m).__name__ for m in model.modules()] == [
        type(m).__name__ for m in tmodel.modules()
    ]
    assert [n for n, _ in model.named_children()] == [n for n, _ in tmodel.named_children()]
    assert [type(m).__name__ for m in model.children()] == [
        type(m).__name__ for m in tmodel.children()
    ]
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in tmodel.named_parameters()]
    assert len(list(model.parameters())) == len(list(tmodel.parameters()))
    assert [n for n, _ in model.named_buffers()] == [n for n, _ in tmodel.named_buffers()]
    assert list(model.state_dict()) == list(tmodel.state_dict())  # both names, as torch
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 1  # the idiom that was silently empty when modules() gave pairs
    assert model.get_submodule("heads.up.conv") is model.heads["up"].conv
    visited: list[str] = []
    model.apply(lambda m: visited.append(type(m).__name__))
    tvisited: list[str] = []
    tmodel.apply(lambda m: tvisited.append(type(m).__name__))
    assert visited == tvisited


def test_containers_behave_as_torch_s(backend: BackendCase) -> None:
    layers = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    layers.append(nn.Sigmoid())
    layers.insert(0, nn.Identity())
    assert [type(m).__name__ for m in layers] == ["Identity", "ReLU", "Tanh", "Sigmoid"]
    assert [n for n, _ in layers.named_children()] == ["0", "1", "2", "3"]
    del layers[1]
    assert [n for n, _ in layers.named_children()] == ["0", "1", "2"]
    assert isinstance(layers[-1], nn.Sigmoid) and len(layers[1:]) == 2
    with pytest.raises(TypeError, match="expected an xpnet Module, got function"):
        layers.append(lambda x: x)  # type: ignore[arg-type]
    heads = nn.ModuleDict({"a": nn.Linear(2, 2, rng=0)})
    heads["b"] = nn.Linear(2, 3, rng=1)
    assert list(heads) == ["a", "b"] and "b" in heads and len(heads) == 2
    assert list(heads.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert isinstance(heads.pop("a"), nn.Linear) and list(heads.keys()) == ["b"]
    with pytest.raises(NotImplementedError, match="does not implement forward"):
        layers(backend.asarray(np.ones(2)))


def test_module_with_several_inputs_trains(backend: BackendCase) -> None:
    torch = pytest.importorskip("torch")
    tmodel = _build(torch.nn).double()
    model = _build(nn).double()
    model.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    x = np.random.default_rng(0).normal(size=(2, 1, 4, 4))
    target = np.random.default_rng(1).normal(size=(2, 1, 4, 4))
    tloss = torch.nn.functional.mse_loss(tmodel(torch.tensor(x)), torch.tensor(target))
    tgrads = torch.autograd.grad(tloss, list(tmodel.parameters()))
    loss, grads = xpnet.value_and_grad(
        model, F.mse_loss, backend.asarray(x), backend.asarray(target)
    )
    assert_close(loss, tloss.detach().numpy(), rtol=1e-9)
    for grad, want in zip(grads.values(), tgrads, strict=True):
        assert_close(grad, want.numpy(), rtol=1e-9, atol=1e-13)


def test_to_takes_torch_s_forms(backend: BackendCase) -> None:
    with xpnet.use_backend(backend.name, backend.device):
        model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.BatchNorm2d(3))
    reference = backend.asarray(np.zeros(1), "float64")
    assert model.double() is model
    for value in model.state_dict().values():
        if "float" in str(value.dtype):
            backend.check_like(value, reference)
    model.float()
    assert all("float32" in str(v.dtype) for k, v in model.state_dict().items() if "num" not in k)
    model.to(dtype="float64")
    model.to("float32")
    assert "float32" in str(model[0].weight.dtype)
    # A device of the model's own backend, by name or as the library's object.
    model.to(array_api_compat.device(model[0].weight))
    assert array_api_compat.array_namespace(model[0].weight) is backend.xp
    model.to("numpy")
    assert isinstance(model[0].weight, np.ndarray)
    assert str(model.state_dict()["1.num_batches_tracked"].dtype) == "int64"
    with pytest.raises(ValueError, match="dtype: expected 'float32', 'float64'"):
        model.to(dtype="int8")
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        model.to(non_blocking=True)
    if backend.name == "torch":
        import torch

        model.to("torch").to(torch.float64).to("cpu")
        assert model[0].weight.dtype == torch.float64 and model[0].weight.device.type == "cpu"


def test_parameters_iterate_as_torch_s_and_optimizers_still_see_them() -> None:
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU(), nn.Linear(3, 1, rng=1))
    pairs = list(model.named_parameters())
    assert [n for n, _ in pairs] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(p is v for p, (_, v) in zip(model.parameters(), pairs, strict=True))
    assert [n for n, _ in model.named_parameters(prefix="net")] == [f"net.{n}" for n, _ in pairs]
    assert [n for n, _ in model[0].named_parameters(recurse=False)] == ["weight", "bias"]
    assert sum(int(np.prod(p.shape)) for p in model.parameters()) == model.num_parameters() == 13
    before = to_numpy(model[0].weight).copy()
    from xpnet import optim

    opt = optim.SGD(model, lr=0.1)
    x = xpnet.asarray(np.ones((4, 2)), "float32")
    _, grads = xpnet.value_and_grad(
        model, F.mse_loss, x, xpnet.asarray(np.zeros((4, 1)), "float32")
    )
    opt.step(grads)
    assert not np.array_equal(to_numpy(model[0].weight), before)
