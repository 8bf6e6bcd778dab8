"""Gradient clipping (xpnet.nn.utils) against torch.nn.utils, inside compiled steps, and
without host syncs."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import BackendCase, assert_close, tolerance
from xpnet import nn, optim
from xpnet.train import CompileWarning, compile_step

SHAPES = {"a": (3, 4), "b": (5,), "c": (2, 2, 2)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])  # clipping, and not
def test_clip_grad_norm_matches_torch(backend: BackendCase, dtype, norm_type, max_norm) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    host = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for p, g in zip(params, host.values(), strict=True):
        p.grad = torch.tensor(g)
    want_total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
    grads = {k: backend.asarray(v, dtype) for k, v in host.items()}
    kept = dict(grads)
    total = nn.utils.clip_grad_norm_(grads, max_norm, norm_type)
    backend.check_like(total, kept["a"])
    assert_close(total, want_total.numpy(), **tolerance(dtype))
    for (name, grad), p in zip(grads.items(), params, strict=True):
        backend.check_like(grad, kept[name])
        assert_close(grad, p.grad.numpy(), **tolerance(dtype))
        assert_close(kept[name], host[name], **tolerance(dtype))  # new arrays, old ones kept


def test_clip_grad_value_matches_torch(backend: BackendCase) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    host = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    params = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for p, g in zip(params, host.values(), strict=True):
        p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_(params, 0.4)
    grads = {k: backend.asarray(v) for k, v in host.items()}
    nn.utils.clip_grad_value_(grads, 0.4)
    for grad, p in zip(grads.values(), params, strict=True):
        assert_close(grad, p.grad.numpy())


def test_clipping_errors(backend: BackendCase) -> None:
    grads = {"a": backend.asarray(np.asarray([np.inf, 1.0]))}
    with pytest.raises(FloatingPointError, match="total norm of order 2.0 of the gradients is inf"):
        nn.utils.clip_grad_norm_(dict(grads), 1.0, error_if_nonfinite=True)
    with pytest.raises(TypeError, match="grads: expected the dict of gradients"):
        nn.utils.clip_grad_norm_([grads["a"]], 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grads: no gradients to clip"):
        nn.utils.clip_grad_norm_({}, 1.0)
    model = nn.Sequential(nn.Linear(1, 1))
    with pytest.raises(ValueError, match="clip_grad_norm: expected a positive number, got 0"):
        xpnet.fit(model, optim.SGD(model, lr=0.1), [], 1, clip_grad_norm=0)


def _net() -> nn.Module:
    rng = np.random.default_rng(2)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, dtype="float64", rng=rng),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 3, dtype="float64", rng=rng),
    )


def test_compiled_steps_clip_as_eager_ones(backend: BackendCase) -> None:
    from xpnet.train.compile._cuda_graphs import CudaGraphStep
    from xpnet.train.compile._eager import EagerStep

    def clip(grads: dict[str, Any]) -> None:
        nn.utils.clip_grad_norm_(grads, 0.05)

    models = [_net() for _ in range(3)]
    opts = [optim.SGD(m, lr=0.5, momentum=0.9) for m in models]
    steps: list[Any] = [EagerStep(models[0], opts[0], F.cross_entropy, "reference", clip)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        steps.append(compile_step(models[1], opts[1], F.cross_entropy, grad_transform=clip))
    if backend.name != "jax":
        from test_compile import ReplayDevice

        device = ReplayDevice(backend.xp)
        steps.append(CudaGraphStep(models[2], opts[2], F.cross_entropy, device, clip))
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = backend.asarray(rng.normal(size=(8, 1, 4, 4)))
        y = backend.asarray(rng.integers(0, 3, size=8))
        losses = [float(xpnet.to_numpy(step(x, y))) for step in steps]
        assert losses == pytest.approx([losses[0]] * len(losses), rel=1e-10)
    reference = {k: xpnet.to_numpy(v) for k, v in models[0].state_dict().items()}
    for model in models[1 : len(steps)]:
        for key, value in model.state_dict().items():
            assert_close(value, reference[key], rtol=1e-10, atol=1e-13)
    # Clipping changed the run: without it the weights end elsewhere.
    plain = _net()
    plain_step = EagerStep(plain, optim.SGD(plain, lr=0.5, momentum=0.9), F.cross_entropy, "")
    rng = np.random.default_rng(3)
    for _ in range(4):
        plain_step(backend.asarray(rng.normal(size=(8, 1, 4, 4))),
                   backend.asarray(rng.integers(0, 3, size=8)))  # fmt: skip
    assert not np.allclose(xpnet.to_numpy(plain[3].weight), reference["3.weight"])


def test_clipping_adds_no_host_sync() -> None:
    from xpnet.models import lenet5
    from xpnet.testing import count_ops, register_counting_backend

    register_counting_backend("counting_clip")
    try:
        with xpnet.use_backend("counting_clip"):
            model = lenet5(rng=0)
            opt = optim.Adam(model)
            rng = np.random.default_rng(0)
            x = xpnet.asarray(rng.standard_normal((16, 1, 28, 28)).astype(np.float32))
            y = xpnet.asarray(rng.integers(0, 10, 16), dtype="int64")
            for _ in range(2):
                with count_ops() as counts:
                    _, grads = xpnet.value_and_grad(model, F.cross_entropy, x, y)
                    with counts.section("clip") as clip:
                        nn.utils.clip_grad_norm_(grads, 1.0)
                    opt.step(grads)
    finally:
        xpnet.unregister_backend("counting_clip")
    assert counts.syncs == 0, counts.sync_sites
    # One concatenation, the norm (three), the scale (three), and one product per tensor.
    assert clip.launches <= len(grads) + 7, clip.by_operation
