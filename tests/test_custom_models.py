"""Models written the way torch users write them, differentiated by recording their
``forward``, against torch autograd on the same weights, in float64.

Each model is written once, as a function of the library it is built from (``nn`` and
``F`` of torch or of xpnet): the torch build is the oracle, differentiated by torch
autograd; the xpnet build loads its weights and is differentiated by xpnet on the backend
under test. Array code inside ``forward`` and in the losses goes through the arrays'
namespace (``array_api_compat.array_namespace``), so it is the same code on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnet
import xpnet.functional as XF
from helpers import BackendCase, assert_close
from reference_nn import randomize_torch, torch_state
from xpnet import nn as xnn

RTOL = 1e-9


def _ns(x: Any) -> Any:
    return array_api_compat.array_namespace(x)


def residual_with_projection(nn: Any, F: Any) -> Any:
    """A ResNet basic block whose shortcut projects (1x1 conv, stride 2, batch norm),
    written as kuangliu's CIFAR ResNet writes it (``out += self.shortcut(x)``)."""

    class BasicBlock(nn.Module):
        def __init__(self, in_planes: int, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = nn.Sequential()
            if stride != 1 or in_planes != planes:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += self.shortcut(x)
            return F.relu(out)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block1 = BasicBlock(3, 4, 2)
            self.block2 = BasicBlock(4, 4, 1)  # identity shortcut
            self.linear = nn.Linear(4, 5)

        def forward(self, x: Any) -> Any:
            out = self.block2(self.block1(x))
            out = F.avg_pool2d(out, 3)
            return self.linear(_ns(out).reshape(out, (out.shape[0], -1)))

    return Net()


def concatenated_skip(nn: Any, F: Any) -> Any:
    """A U-Net-style block: two branches concatenated on the channel axis, a crop by
    slicing, and a skip concatenated back."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.left = nn.Conv2d(2, 3, 3, padding=1)
            self.right = nn.Conv2d(2, 2, 1)
            self.fuse = nn.Conv2d(5, 4, 3)
            self.head = nn.Linear(4 * 4 * 4 + 2 * 4 * 4, 3)

        def forward(self, x: Any) -> Any:
            xp = _ns(x)
            both = xp.concat([F.relu(self.left(x)), self.right(x)], axis=1)
            fused = self.fuse(both)  # 6x6 -> 4x4
            skip = x[:, :, 1:-1, 1:-1]  # crop the input to match
            n = x.shape[0]
            flat = xp.concat([xp.reshape(fused, (n, -1)), xp.reshape(skip, (n, -1))], axis=1)
            return self.head(flat)

    return Net()


def shared_layer(nn: Any, F: Any) -> Any:
    """One layer used twice, and a branch chosen by Python ``if`` on a shape."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.bn = nn.BatchNorm2d(2)
            self.out = nn.Linear(2 * 3 * 3, 4)

        def forward(self, x: Any) -> Any:
            h = F.relu(self.bn(self.conv(x)))
            h = self.conv(h) + h  # the same conv again
            if h.shape[-1] > 4:  # a branch chosen by the input's size
                h = F.max_pool2d(h, 2)
            return self.out(_ns(h).reshape(h, (h.shape[0], -1)))

    return Net()


def two_heads(nn: Any, F: Any) -> Any:
    """Two heads on one trunk, summed; dropout off, so both sides compute the same."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(6, 8), nn.Tanh())
            self.head_a = nn.Linear(8, 3)
            self.head_b = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 3))

        def forward(self, x: Any) -> Any:
            features = self.trunk(x)
            return self.head_a(features) + 0.5 * self.head_b(features)

    return Net()


def attention(nn: Any, F: Any) -> Any:
    """Multi-head self-attention: ``softmax(q @ k^T / sqrt(d)) @ v`` with the heads split
    by ``reshape`` and ``permute_dims``, and a mean over the sequence."""

    class Net(nn.Module):
        def __init__(self, dim: int = 8, heads: int = 2) -> None:
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.head = nn.Linear(dim, 4)

        def forward(self, x: Any) -> Any:
            xp = _ns(x)
            b, t, d = x.shape
            qkv = xp.reshape(self.qkv(x), (b, t, 3, self.heads, d // self.heads))
            qkv = xp.permute_dims(qkv, (2, 0, 3, 1, 4))  # (3, b, heads, t, d/heads)
            q, k, v = qkv[0, ...], qkv[1, ...], qkv[2, ...]
            weights = F.softmax(q @ xp.matrix_transpose(k) / math.sqrt(d // self.heads), dim=-1)
            mixed = xp.reshape(xp.permute_dims(weights @ v, (0, 2, 1, 3)), (b, t, d))
            return self.head(xp.mean(self.proj(mixed) + x, axis=1))

    return Net()


def inverted_residual(nn: Any, F: Any) -> Any:
    """MobileNetV2's block as kuangliu writes it: expand, depthwise (groups), project, and
    ``out = out + self.shortcut(x) if self.stride == 1 else out``."""

    class Block(nn.Module):
        def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int):
            super().__init__()
            self.stride = stride
            planes = expansion * in_planes
            self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=planes, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out_planes)
            self.shortcut = nn.Sequential()
            if stride == 1 and in_planes != out_planes:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes)
                )

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = F.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            out = out + self.shortcut(x) if self.stride == 1 else out
            return out

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(Block(3, 4, 2, 1), Block(4, 4, 2, 1), Block(4, 6, 2, 2))
            self.linear = nn.Linear(6, 3)

        def forward(self, x: Any) -> Any:
            out = F.adaptive_avg_pool2d(self.layers(x), 1)
            return self.linear(_ns(out).reshape(out, (out.shape[0], -1)))

    return Net()


def cross_entropy_with_penalty(F: Any) -> Callable[[Any, Any], Any]:
    """A loss with a term of array operations: cross-entropy plus a penalty on the
    squared logits and on how far each row's largest logit is from 1."""

    def loss(logits: Any, target: Any) -> Any:
        xp = _ns(logits)
        penalty = xp.mean(xp.sum(logits**2, axis=1)) + xp.mean(xp.abs(xp.max(logits, axis=1) - 1))
        return F.cross_entropy(logits, target) + 0.05 * penalty

    return loss


# name, model factory, input shape, number of classes, loss factory
FAMILY: list[tuple[str, Callable[..., Any], tuple[int, ...], int, Callable[..., Any] | None]] = [
    ("residual block with projection", residual_with_projection, (4, 3, 6, 6), 5, None),
    ("concatenated skip and crop", concatenated_skip, (3, 2, 6, 6), 3, None),
    ("layer used twice, branch on shape", shared_layer, (4, 2, 6, 6), 4, None),
    ("two heads summed, custom loss", two_heads, (5, 6), 3, cross_entropy_with_penalty),
    ("attention", attention, (3, 5, 8), 4, None),
    ("inverted residual (depthwise)", inverted_residual, (4, 3, 6, 6), 3, None),
]


@pytest.mark.parametrize(("name", "build", "shape", "classes", "loss"), FAMILY,
                         ids=[f[0] for f in FAMILY])  # fmt: skip
def test_custom_model_gradients_match_torch_autograd(
    backend: BackendCase, name: str, build: Any, shape: tuple[int, ...], classes: int, loss: Any
) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = build(torch.nn, torch.nn.functional).double()
    randomize_torch(tmodel, seed=1)
    initial = torch_state(tmodel)
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape)
    target = rng.integers(0, classes, size=shape[0])

    tloss_fn = (loss or (lambda _: torch.nn.functional.cross_entropy))(torch.nn.functional)
    tmodel.train()
    tloss = tloss_fn(tmodel(torch.tensor(x)), torch.tensor(target))
    tgrads = torch.autograd.grad(tloss, list(tmodel.parameters()))
    expected = {n: g.numpy() for (n, _), g in zip(tmodel.named_parameters(), tgrads, strict=True)}
    after = torch_state(tmodel)

    model = build(xnn, XF).double()
    model.load_state_dict(initial)
    loss_fn = (loss or (lambda _: XF.cross_entropy))(XF)
    value, grads = xpnet.value_and_grad(
        model, loss_fn, backend.asarray(x), backend.asarray(target, "int64")
    )
    assert_close(value, tloss.detach().numpy(), rtol=RTOL, atol=0)
    assert list(grads) == list(expected)
    for key, grad in grads.items():
        backend.check_like(grad, backend.asarray(x))
        assert_close(grad, expected[key], rtol=RTOL, atol=1e-13)
    for key, value in model.state_dict().items():  # batch-norm statistics, as torch's
        assert_close(value, after[key], rtol=RTOL, atol=0)


def test_custom_model_trains_with_fit_compile_and_summary(backend: BackendCase) -> None:
    """A user-written model goes through fit (eager, and compiled where the backend has a
    compiler), evaluate and summary as the shipped ones do."""
    from xpnet import optim
    from xpnet.data import DataLoader, Dataset

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, size=48).astype(np.int64)
    images = rng.normal(size=(48, 3, 6, 6)).astype(np.float32) * 0.1
    images[np.arange(48), labels % 3, :, :] += 1.0  # learnable: the bright channel
    data = Dataset(images, labels, 5, name="toy")
    xpnet.seed(0)
    model = residual_with_projection(xnn, XF)
    first = None
    for compile in (False, True):
        opt = optim.Adam(model, lr=0.02)
        history = xpnet.fit(model, opt, DataLoader(data, 16, shuffle=True), 4, progress=False,
                            log=None, compile=compile)  # fmt: skip
        first = history[0]["loss"] if first is None else first
        assert history[-1]["loss"] < first
    result = xpnet.evaluate(model, DataLoader(data, 16))
    assert 0.0 <= result["accuracy"] <= 1.0
    text = model.summary((1, 3, 6, 6))
    assert "block1.shortcut.0" in text and "BasicBlock" in text and "(1, 5)" in text
