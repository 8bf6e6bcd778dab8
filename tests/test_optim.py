"""xpnet.optim: optimizers and schedulers against torch.optim, on real MNIST batches.

The oracle is torch.optim driving the same network (same weights, loaded through
``load_state_dict``) on the same MNIST batches in float64; after several steps every
weight, buffer and optimizer state array must agree to round-off.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import BackendCase, assert_close, to_numpy
from reference_nn import torch_state
from xpnet import nn, optim

BATCH, STEPS = 32, 5


@functools.lru_cache(maxsize=1)
def _mnist_host() -> tuple[np.ndarray, np.ndarray] | None:
    directory = xpnet.data.find_mnist(Path(__file__).resolve().parent)
    if directory is None:
        return None
    train, _ = xpnet.data.load_mnist(directory)
    n = BATCH * STEPS
    images = train.images[:n].astype(np.float64) / 255.0
    images = (images - xpnet.data.MNIST_MEAN) / xpnet.data.MNIST_STD
    return images, train.labels[:n]


def mnist_batches() -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``STEPS`` batches of ``BATCH`` real MNIST images (normalised, float64)."""
    data = _mnist_host()
    if data is None:
        pytest.skip(
            "MNIST not found: set XPNET_MNIST_DIR or put the IDX files in ../shared/data/mnist "
            "(CI has them)"
        )
    images, labels = data
    return [(images[i : i + BATCH], labels[i : i + BATCH]) for i in range(0, len(labels), BATCH)]


def _net(seed: int, dtype: str = "float64") -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        # No conv bias before batch norm: its gradient is exactly zero, so the computed one
        # is round-off, which Adam would blow up to full steps in different directions.
        nn.Conv2d(1, 4, 5, stride=2, bias=False, dtype=dtype, rng=rng),  # 28 -> 12
        nn.BatchNorm2d(4, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 12 -> 6
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 10, dtype=dtype, rng=rng),
    )


def _torch_net(torch: Any) -> Any:
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 4, 5, stride=2, bias=False),
        t.BatchNorm2d(4),
        t.ReLU(),
        t.MaxPool2d(2),
        t.Flatten(),
        t.Linear(4 * 6 * 6, 10),
    ).double()


@dataclass(frozen=True)
class Config:
    id: str
    xpnet: Callable[[nn.Module], optim.Optimizer]
    torch: Callable[[Any, Any], Any]


CONFIGS = [
    Config("sgd", lambda m: optim.SGD(m, lr=0.1), lambda t, p: t.optim.SGD(p, lr=0.1)),
    Config(
        "sgd_momentum",
        lambda m: optim.SGD(m, lr=0.05, momentum=0.9),
        lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9),
    ),
    Config(
        "sgd_nesterov_weight_decay",
        lambda m: optim.SGD(m, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    ),
    Config(
        "sgd_dampening_weight_decay",
        lambda m: optim.SGD(m, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=5e-3),
        lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=5e-3),
    ),
    Config(
        "sgd_maximize",
        lambda m: optim.SGD(m, lr=0.01, momentum=0.5, maximize=True),
        lambda t, p: t.optim.SGD(p, lr=0.01, momentum=0.5, maximize=True),
    ),
    Config("adam", lambda m: optim.Adam(m, lr=1e-2), lambda t, p: t.optim.Adam(p, lr=1e-2)),
    Config(
        "adam_low_beta1_weight_decay",  # 1 - beta1 >= 0.5 takes torch.lerp's other branch
        lambda m: optim.Adam(m, lr=5e-3, betas=(0.3, 0.95), eps=1e-6, weight_decay=0.01),
        lambda t, p: t.optim.Adam(p, lr=5e-3, betas=(0.3, 0.95), eps=1e-6, weight_decay=0.01),
    ),
    Config(
        "adam_amsgrad",
        lambda m: optim.Adam(m, lr=1e-2, amsgrad=True),
        lambda t, p: t.optim.Adam(p, lr=1e-2, amsgrad=True),
    ),
    Config(
        "adamw",
        lambda m: optim.AdamW(m, lr=1e-2, weight_decay=0.1),
        lambda t, p: t.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    ),
    Config("rmsprop", lambda m: optim.RMSprop(m, lr=1e-3), lambda t, p: t.optim.RMSprop(p, lr=1e-3)),
    Config(
        "rmsprop_centered_momentum_decay",
        lambda m: optim.RMSprop(m, lr=1e-3, alpha=0.9, momentum=0.5, centered=True,
                                weight_decay=1e-2, maximize=True),
        lambda t, p: t.optim.RMSprop(p, lr=1e-3, alpha=0.9, momentum=0.5, centered=True,
                                     weight_decay=1e-2, maximize=True),
    ),
    Config("adagrad", lambda m: optim.Adagrad(m, lr=0.05), lambda t, p: t.optim.Adagrad(p, lr=0.05)),
    Config(
        "adagrad_decay_accumulator",
        lambda m: optim.Adagrad(m, lr=0.05, lr_decay=0.1, weight_decay=1e-2,
                                initial_accumulator_value=0.3),
        lambda t, p: t.optim.Adagrad(p, lr=0.05, lr_decay=0.1, weight_decay=1e-2,
                                     initial_accumulator_value=0.3),
    ),
    Config("adadelta", lambda m: optim.Adadelta(m), lambda t, p: t.optim.Adadelta(p)),
    Config(
        "adadelta_rho_decay",
        lambda m: optim.Adadelta(m, lr=0.5, rho=0.8, eps=1e-5, weight_decay=1e-2),
        lambda t, p: t.optim.Adadelta(p, lr=0.5, rho=0.8, eps=1e-5, weight_decay=1e-2),
    ),
]  # fmt: skip

# torch's per-parameter state names -> xpnet's slots (the same names).
SLOTS = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg",
         "grad_avg", "sum", "acc_delta")  # fmt: skip


def _torch_step(torch: Any, tnet: Any, topt: Any, x: np.ndarray, y: np.ndarray) -> float:
    topt.zero_grad()
    loss = torch.nn.functional.cross_entropy(tnet(torch.tensor(x)), torch.tensor(y))
    loss.backward()
    topt.step()
    return float(loss.item())


def _step(
    backend: BackendCase, model: nn.Module, opt: optim.Optimizer, x: np.ndarray, y: np.ndarray
) -> Any:
    loss, grads = xpnet.value_and_grad(
        model, F.cross_entropy, backend.asarray(x), backend.asarray(y)
    )
    opt.step(grads)
    return loss


def _assert_matches_torch_state(opt: optim.Optimizer, topt: Any, names: list[str]) -> None:
    tstate = topt.state_dict()["state"]
    flat = opt.state_dict()
    for index, name in enumerate(names):
        entry = tstate.get(index, {})
        for slot in SLOTS:
            value = entry.get(slot)
            key = f"state.{name}.{slot}"
            if value is None:
                assert key not in flat, key
            else:
                assert_close(flat[key], value.numpy(), rtol=1e-10, atol=1e-13)
        if "step" in entry:
            assert flat[f"state.{name}.step"] == int(entry["step"])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.id)
def test_optimizer_matches_torch_on_mnist(backend: BackendCase, config: Config) -> None:
    torch = pytest.importorskip("torch")
    batches = mnist_batches()
    torch.manual_seed(0)
    tnet = _torch_net(torch)
    model = _net(1)
    model.load_state_dict(torch_state(tnet))
    topt, opt = config.torch(torch, tnet.parameters()), config.xpnet(model)
    for x, y in batches:
        expected = _torch_step(torch, tnet, topt, x, y)
        assert_close(_step(backend, model, opt, x, y), expected, rtol=1e-10)
    for key, value in torch_state(tnet).items():
        assert_close(model.state_dict()[key], value, rtol=1e-10, atol=1e-13)
        assert array_api_compat.array_namespace(model.state_dict()[key]) is backend.xp
    _assert_matches_torch_state(opt, topt, [n for n, _ in tnet.named_parameters()])
    assert opt.step_count == len(batches)


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[6]], ids=lambda c: c.id)
def test_parameters_without_gradients_wait_like_torch(backend: BackendCase, config: Config) -> None:
    # Steps 1-2 update the classifier only (the conv and batch-norm parameters are frozen
    # in torch and absent from grads here); from step 3 everything trains. Parameters that
    # join late start their momentum and bias correction then, as in torch.
    torch = pytest.importorskip("torch")
    batches = mnist_batches()
    torch.manual_seed(0)
    tnet = _torch_net(torch)
    model = _net(1)
    model.load_state_dict(torch_state(tnet))
    topt, opt = config.torch(torch, tnet.parameters()), config.xpnet(model)
    for step, (x, y) in enumerate(batches):
        frozen = step < 2
        for name, p in tnet.named_parameters():
            p.requires_grad_(not (frozen and not name.startswith("5.")))
        _torch_step(torch, tnet, topt, x, y)
        _, grads = xpnet.value_and_grad(
            model, F.cross_entropy, backend.asarray(x), backend.asarray(y)
        )
        if frozen:
            grads = {k: v for k, v in grads.items() if k.startswith("5.")}
        opt.step(grads)
    for key, value in torch_state(tnet).items():
        assert_close(model.state_dict()[key], value, rtol=1e-10, atol=1e-13)
    _assert_matches_torch_state(opt, topt, [n for n, _ in tnet.named_parameters()])


def _host(flat: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint keeps: arrays on the host, scalars as they are."""
    return {
        k: xpnet.to_numpy(v) if array_api_compat.is_array_api_obj(v) else v for k, v in flat.items()
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda m: optim.SGD(m, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda m: optim.Adam(m, lr=1e-2, amsgrad=True),
        lambda m: optim.AdamW(m, lr=1e-2),
        lambda m: optim.RMSprop(m, lr=1e-3, momentum=0.5, centered=True),
        lambda m: optim.Adagrad(m, lr=0.05, lr_decay=0.1),
        lambda m: optim.Adadelta(m),
    ],
    ids=["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta"],
)
def test_state_dict_resumes_exactly(backend: BackendCase, make: Any) -> None:
    batches = mnist_batches()

    def scheduled(model: nn.Module) -> tuple[optim.Optimizer, optim.LRScheduler]:
        opt = make(model)
        return opt, optim.CosineAnnealingLR(opt, T_max=4, eta_min=1e-4)

    straight = _net(2)
    opt, sched = scheduled(straight)
    for x, y in batches:
        _step(backend, straight, opt, x, y)
        sched.step()

    first = _net(2)
    opt, sched = scheduled(first)
    for x, y in batches[:3]:
        _step(backend, first, opt, x, y)
        sched.step()
    saved_model = _host(first.state_dict())
    saved_opt = _host(opt.state_dict())
    saved_sched = sched.state_dict()
    scalars = {k: v for k, v in saved_opt.items() if not isinstance(v, np.ndarray)}
    json.dumps(scalars), json.dumps(saved_sched)  # what checkpoints store as JSON

    resumed = _net(3)  # other weights, and an optimizer with other settings
    opt = make(resumed)
    opt.lr = 123.0
    sched = optim.CosineAnnealingLR(opt, T_max=4, eta_min=1e-4)
    resumed.load_state_dict(saved_model)
    opt.load_state_dict(saved_opt)
    sched.load_state_dict(saved_sched)
    for x, y in batches[3:]:
        _step(backend, resumed, opt, x, y)
        sched.step()
    assert opt.step_count == len(batches)
    expected = straight.state_dict()
    for key, value in resumed.state_dict().items():
        np.testing.assert_array_equal(to_numpy(value), to_numpy(expected[key]), err_msg=key)
    assert opt.lr == sched.get_last_lr()[0]


def test_optimizer_follows_model_to_another_backend(backend: BackendCase) -> None:
    rng = np.random.default_rng(0)  # batches shaped like MNIST's: JAX reuses compiled ops
    data = [
        (rng.normal(size=(BATCH, 1, 28, 28)), rng.integers(0, 10, size=BATCH)) for _ in range(3)
    ]
    moved = _net(4)
    opt = optim.Adam(moved, lr=1e-2)
    for x, y in data[:2]:
        _step(backend, moved, opt, x, y)
    moved.to("numpy")
    numpy = BackendCase("numpy", np, "cpu")
    with xpnet.use_backend("numpy"):
        _step(numpy, moved, opt, *data[2])
        reference = _net(4)
        ref_opt = optim.Adam(reference, lr=1e-2)
        for x, y in data:
            _step(numpy, reference, ref_opt, x, y)
    for key, value in moved.state_dict().items():
        assert isinstance(value, np.ndarray)
        assert_close(value, to_numpy(reference.state_dict()[key]), rtol=1e-12, atol=1e-14)
    for key, value in opt.state_dict().items():
        if array_api_compat.is_array_api_obj(value):
            assert isinstance(value, np.ndarray), key


@pytest.mark.parametrize("make", [optim.SGD, optim.Adam, optim.AdamW])
def test_step_keeps_backend_and_float32(backend: BackendCase, make: Any) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3, rng=0))  # float32 by default
    opt = make(model, lr=0.01) if make is not optim.SGD else make(model, lr=0.01, momentum=0.9)
    x = backend.asarray(np.random.default_rng(0).normal(size=(2, 1, 4, 4)), "float32")
    before = {k: to_numpy(v) for k, v in model.named_parameters()}
    for _ in range(2):
        _, grads = xpnet.value_and_grad(model, F.cross_entropy, x, backend.asarray([1, 2]))
        opt.step(grads)
    for key, value in model.named_parameters():
        backend.check_like(value, x)
        assert not np.array_equal(to_numpy(value), before[key])
    for value in opt.state_dict().values():
        if array_api_compat.is_array_api_obj(value):
            backend.check_like(value, x)


# ------------------------------------------------------------------------- schedulers


def _torch_schedule(torch: Any, make: Callable[[Any], Any], epochs: int) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([param], lr=0.1)
    sched = make(topt)
    rates = []
    for _ in range(epochs):
        topt.step()
        sched.step()
        rates.append(sched.get_last_lr()[0])
    return rates


@pytest.mark.parametrize(
    ("make", "make_torch"),
    [
        (
            lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
            lambda t, o: t.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
        ),
        (
            lambda o: optim.StepLR(o, step_size=1, gamma=0.9),
            lambda t, o: t.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.9),
        ),
        (
            lambda o: optim.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
            lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
        ),
        (
            lambda o: optim.CosineAnnealingLR(o, T_max=3),
            lambda t, o: t.optim.lr_scheduler.CosineAnnealingLR(o, T_max=3),
        ),
    ],
    ids=["step3", "step1", "cosine5", "cosine3"],
)
def test_schedulers_match_torch(make: Any, make_torch: Any) -> None:
    torch = pytest.importorskip("torch")
    epochs = 14  # past T_max: torch's cosine rises again, and so does ours
    expected = _torch_schedule(torch, lambda o: make_torch(torch, o), epochs)
    opt = optim.SGD(nn.Linear(1, 1, rng=0), lr=0.1)
    sched = make(opt)
    rates = []
    for _ in range(epochs):
        sched.step()
        rates.append(opt.lr)
        assert sched.get_last_lr() == [opt.lr]
    assert rates == expected  # the same formulas, so the same floats
    # Resuming mid-way, with or without the saved rate, continues the same sequence.
    for keep_lr in (True, False):
        opt = optim.SGD(nn.Linear(1, 1, rng=0), lr=0.1)
        sched = make(opt)
        for _ in range(6):
            sched.step()
        state = dict(sched.state_dict())
        if not keep_lr:
            del state["last_lr"]
        opt2 = optim.SGD(nn.Linear(1, 1, rng=0), lr=0.1)
        sched2 = make(opt2)
        sched2.load_state_dict(state)
        assert opt2.lr == pytest.approx(expected[5], rel=1e-14)
        sched2.step()
        assert opt2.lr == pytest.approx(expected[6], rel=1e-14)


# ----------------------------------------------------------------------------- errors


def test_optimizer_errors(backend: BackendCase) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3, rng=0))
    opt = optim.SGD(model, lr=0.1, momentum=0.9)
    x = backend.asarray(np.random.default_rng(0).normal(size=(2, 1, 4, 4)), "float32")
    _, grads = xpnet.value_and_grad(model, F.cross_entropy, x, backend.asarray([1, 2]))
    before = {k: to_numpy(v) for k, v in model.state_dict().items()}
    with pytest.raises(KeyError, match=r"\['2\.weight'\] are not trainable parameters"):
        opt.step({**grads, "2.weight": grads["1.weight"]})
    with pytest.raises(ValueError, match=r"'1\.bias' has shape \(3, 16\), parameter has \(3,\)"):
        opt.step({"1.bias": grads["1.weight"]})
    with pytest.raises(TypeError, match="'1.bias' must be an array of the parameter's library"):
        opt.step({"1.bias": [0.0, 0.0, 0.0]})
    for key, value in model.state_dict().items():  # nothing was applied
        np.testing.assert_array_equal(to_numpy(value), before[key])
    assert opt.step_count == 0 and opt.state == {}
    opt.step(grads)
    flat = opt.state_dict()
    with pytest.raises(KeyError, match="names '9.weight', which the model does not have"):
        opt.load_state_dict({"state.9.weight.momentum_buffer": np.zeros(3)})
    with pytest.raises(KeyError, match="slot 'exp_avg' is not one of"):
        opt.load_state_dict({"state.1.bias.exp_avg": np.zeros(3)})
    with pytest.raises(ValueError, match=r"has shape \(2,\), parameter has \(3,\)"):
        opt.load_state_dict({"state.1.bias.momentum_buffer": np.zeros(2)})
    opt.load_state_dict(flat)
    with pytest.raises(ValueError, match="nesterov: needs momentum > 0 and dampening == 0"):
        optim.SGD(model, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\]: expected a value in \[0, 1\), got 1.0"):
        optim.Adam(model, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr: expected a finite number >= 0, got -1"):
        optim.AdamW(model, lr=-1)
    with pytest.raises(TypeError, match="model: expected an xpnet Module, got list"):
        optim.SGD([1, 2], lr=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step_size: expected a positive int, got 0"):
        optim.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max: expected a positive int, got 0"):
        optim.CosineAnnealingLR(opt, T_max=0)


# ------------------------------------------------------------------------ parameter groups


def _xpnet_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The conv slower (given as a module), no weight decay on the batch norm (given as
    arrays) nor the classifier's bias (a name); the classifier's weight by its pair."""
    return [
        {"params": model[0], "lr": 0.01},
        {"params": [model[1].weight, model[1].bias, "5.bias"], "weight_decay": 0.0},
        {"params": [(n, p) for n, p in model.named_parameters() if n == "5.weight"]},
    ]


def _torch_groups(tnet: Any) -> list[dict[str, Any]]:
    named = dict(tnet.named_parameters())
    return [
        {"params": [named["0.weight"]], "lr": 0.01},
        {"params": [named["1.weight"], named["1.bias"], named["5.bias"]], "weight_decay": 0.0},
        {"params": [named["5.weight"]]},
    ]


GROUP_ORDER = ["0.weight", "1.weight", "1.bias", "5.bias", "5.weight"]


@pytest.mark.parametrize(
    ("make", "make_torch"),
    [
        (
            lambda m, g: optim.SGD(m, lr=0.1, momentum=0.9, weight_decay=1e-2, param_groups=g),
            lambda t, g: t.optim.SGD(g, lr=0.1, momentum=0.9, weight_decay=1e-2),
        ),
        (
            lambda m, g: optim.Adam(
                m, lr=1e-2, weight_decay=1e-2, param_groups=[*g[:2], {**g[2], "betas": (0.5, 0.9)}]
            ),
            lambda t, g: t.optim.Adam(
                [*g[:2], {**g[2], "betas": (0.5, 0.9)}], lr=1e-2, weight_decay=1e-2
            ),
        ),
        (
            lambda m, g: optim.AdamW(m, lr=1e-2, weight_decay=0.1, param_groups=g),
            lambda t, g: t.optim.AdamW(g, lr=1e-2, weight_decay=0.1),
        ),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_parameter_groups_match_torch(backend: BackendCase, make: Any, make_torch: Any) -> None:
    torch = pytest.importorskip("torch")
    batches = mnist_batches()
    torch.manual_seed(0)
    tnet = _torch_net(torch)
    model = _net(1)
    model.load_state_dict(torch_state(tnet))
    topt = make_torch(torch, _torch_groups(tnet))
    opt = make(model, _xpnet_groups(model))
    assert [g["params"] for g in opt.param_groups] == [
        ["0.weight"],
        ["1.weight", "1.bias", "5.bias"],
        ["5.weight"],
    ]
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.5)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    for x, y in batches:
        expected = _torch_step(torch, tnet, topt, x, y)
        assert_close(_step(backend, model, opt, x, y), expected, rtol=1e-10)
        tsched.step()
        sched.step()
        assert sched.get_last_lr() == tsched.get_last_lr()
    for key, value in torch_state(tnet).items():
        assert_close(model.state_dict()[key], value, rtol=1e-10, atol=1e-13)
    _assert_matches_torch_state(opt, topt, GROUP_ORDER)
    # The groups' options survive a state_dict round trip, scheduled learning rates too.
    state, sched_state = _host(opt.state_dict()), json.loads(json.dumps(sched.state_dict()))
    assert state["param_groups"] == 3 and state["group1.weight_decay"] == 0.0
    again = make(model, _xpnet_groups(model))
    again.load_state_dict(state)
    sched2 = optim.StepLR(again, step_size=2, gamma=0.5)
    sched2.load_state_dict(sched_state)
    assert [g["lr"] for g in again.param_groups] == [g["lr"] for g in opt.param_groups]
    assert again.param_groups[2].get("beta1", None) == opt.param_groups[2].get("beta1", None)


def test_parameters_in_no_group_stay_and_options_are_checked(backend: BackendCase) -> None:
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ReLU(), nn.Linear(4, 2, rng=1))
    opt = optim.SGD(model, lr=0.1, param_groups=[{"params": model[2]}])
    before = to_numpy(model[0].weight).copy()
    x = backend.asarray(np.ones((2, 3)), "float32")
    _, grads = xpnet.value_and_grad(model, F.cross_entropy, x, backend.asarray([0, 1]))
    opt.step(grads)
    np.testing.assert_array_equal(to_numpy(model[0].weight), before)  # in no group
    assert set(opt.state_dict()) == {"step", "lr", "momentum", "dampening", "weight_decay",
                                     "nesterov", "maximize"}  # fmt: skip
    opt.lr = 0.5  # every group; reads the first group's
    assert opt.lr == 0.5 and opt.param_groups[0]["lr"] == 0.5
    opt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"param_groups\[0\]: lr: expected a finite number >= 0"):
        opt.step(grads)
    opt.param_groups[0]["lr"] = 0.1
    with pytest.raises(ValueError, match=r"param_groups\[1\]: parameter '2.weight' is already"):
        optim.SGD(model, param_groups=[{"params": model[2]}, {"params": ["2.weight"]}])
    with pytest.raises(ValueError, match=r"param_groups\[0\]: unknown \['betas'\] for SGD"):
        optim.SGD(model, param_groups=[{"params": model, "betas": (0.9, 0.99)}])
    with pytest.raises(ValueError, match=r"is not part of the optimizer's model"):
        optim.SGD(model, param_groups=[{"params": nn.Linear(1, 1, rng=0)}])
    with pytest.raises(ValueError, match=r"an array of shape \(4,\) is not a parameter"):
        optim.SGD(model, param_groups=[{"params": [xpnet.asarray(np.zeros(4))]}])
    with pytest.raises(ValueError, match="'nothing' is not a trainable parameter"):
        optim.SGD(model, param_groups=[{"params": ["nothing"]}])
    with pytest.raises(TypeError, match=r"param_groups\[0\]: expected a dict with a 'params'"):
        optim.SGD(model, param_groups=[model[0].parameters()])  # type: ignore[list-item]
    two = optim.SGD(model, param_groups=[{"params": model[0]}, {"params": model[2]}])
    with pytest.raises(ValueError, match="has 1 parameter groups, this optimizer has 2"):
        two.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="'maximize': expected True or False, got 'false'"):
        opt.load_state_dict({**_host(opt.state_dict()), "maximize": "false"})
    with pytest.raises(ValueError, match="lr: expected a finite number >= 0, got nan"):
        optim.Adam(model, lr=float("nan"))


# ------------------------------------------------------------- schedules, two groups


def _two_groups(kind: str) -> tuple[nn.Module, optim.Optimizer]:
    model = nn.Sequential(nn.Linear(1, 1, rng=0), nn.Linear(1, 1, rng=1))
    groups = [{"params": model[0]}, {"params": model[1], "lr": 0.01}]
    if kind == "adam":
        return model, optim.Adam(model, lr=0.1, param_groups=groups)
    return model, optim.SGD(model, lr=0.1, momentum=0.9, param_groups=groups)


def _torch_two_groups(torch: Any, kind: str) -> Any:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    groups = [{"params": [a]}, {"params": [b], "lr": 0.01}]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=0.1)
    return torch.optim.SGD(groups, lr=0.1, momentum=0.9)


def _momenta(groups: list[dict[str, Any]], kind: str) -> list[float]:
    if kind == "adam":
        return [float(g["betas"][0] if "betas" in g else g["beta1"]) for g in groups]
    return [float(g["momentum"]) for g in groups]


# id, optimizer kind, xpnet schedule, torch schedule
SCHEDULES = [
    ("multistep", "sgd", lambda o: optim.MultiStepLR(o, [2, 5, 5], gamma=0.5),
     lambda t, o: t.optim.lr_scheduler.MultiStepLR(o, [2, 5, 5], gamma=0.5)),
    ("exponential", "sgd", lambda o: optim.ExponentialLR(o, 0.9),
     lambda t, o: t.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    ("linear_warmup", "sgd", lambda o: optim.LinearLR(o, 0.25, 1.0, total_iters=4),
     lambda t, o: t.optim.lr_scheduler.LinearLR(o, 0.25, 1.0, total_iters=4)),
    ("linear_decay", "sgd", lambda o: optim.LinearLR(o, 1.0, 0.1, total_iters=3),
     lambda t, o: t.optim.lr_scheduler.LinearLR(o, 1.0, 0.1, total_iters=3)),
    ("warmup_then_cosine", "sgd",
     lambda o: optim.SequentialLR(o, [optim.LinearLR(o, 0.1, total_iters=3),
                                      optim.CosineAnnealingLR(o, T_max=6)], [3]),
     lambda t, o: t.optim.lr_scheduler.SequentialLR(
         o, [t.optim.lr_scheduler.LinearLR(o, 0.1, total_iters=3),
             t.optim.lr_scheduler.CosineAnnealingLR(o, T_max=6)], [3])),
    ("three_in_sequence", "sgd",
     lambda o: optim.SequentialLR(o, [optim.ExponentialLR(o, 0.9), optim.StepLR(o, 2, 0.5),
                                      optim.MultiStepLR(o, [1, 3])], [2, 5]),
     lambda t, o: t.optim.lr_scheduler.SequentialLR(
         o, [t.optim.lr_scheduler.ExponentialLR(o, 0.9), t.optim.lr_scheduler.StepLR(o, 2, 0.5),
             t.optim.lr_scheduler.MultiStepLR(o, [1, 3])], [2, 5])),
    ("one_cycle", "sgd", lambda o: optim.OneCycleLR(o, [1.0, 0.1], total_steps=12),
     lambda t, o: t.optim.lr_scheduler.OneCycleLR(o, [1.0, 0.1], total_steps=12)),
    ("one_cycle_three_phase_linear", "sgd",
     lambda o: optim.OneCycleLR(o, 0.5, epochs=3, steps_per_epoch=4, pct_start=0.25,
                                anneal_strategy="linear", three_phase=True),
     lambda t, o: t.optim.lr_scheduler.OneCycleLR(o, 0.5, epochs=3, steps_per_epoch=4,
                                                  pct_start=0.25, anneal_strategy="linear",
                                                  three_phase=True)),
    ("one_cycle_adam", "adam", lambda o: optim.OneCycleLR(o, 0.2, total_steps=12),
     lambda t, o: t.optim.lr_scheduler.OneCycleLR(o, 0.2, total_steps=12)),
    ("step_cosine_groups", "adam",
     lambda o: optim.SequentialLR(o, [optim.StepLR(o, 2, 0.5), optim.CosineAnnealingLR(o, 4)],
                                  [4]),
     lambda t, o: t.optim.lr_scheduler.SequentialLR(
         o, [t.optim.lr_scheduler.StepLR(o, 2, 0.5), t.optim.lr_scheduler.CosineAnnealingLR(o, 4)],
         [4])),
]  # fmt: skip


def _trajectory(groups_of: Callable[[], list[dict[str, Any]]], step: Callable[[], None],
                kind: str, steps: int) -> list[tuple[list[float], list[float]]]:  # fmt: skip
    seen = [([float(g["lr"]) for g in groups_of()], _momenta(groups_of(), kind))]
    for _ in range(steps):
        step()
        seen.append(([float(g["lr"]) for g in groups_of()], _momenta(groups_of(), kind)))
    return seen


@pytest.mark.parametrize(("name", "kind", "make", "make_torch"), SCHEDULES,
                         ids=[s[0] for s in SCHEDULES])  # fmt: skip
def test_schedules_of_two_groups_match_torch(name, kind, make, make_torch) -> None:
    torch = pytest.importorskip("torch")
    topt = _torch_two_groups(torch, kind)
    tsched = make_torch(torch, topt)

    def torch_step() -> None:
        topt.step()
        tsched.step()

    expected = _trajectory(lambda: topt.param_groups, torch_step, kind, 11)
    _, opt = _two_groups(kind)
    sched = make(opt)
    assert _trajectory(lambda: opt.param_groups, sched.step, kind, 11) == expected
    # Resumed after 5 steps from a JSON round trip, the schedule goes on alike.
    _, opt = _two_groups(kind)
    sched = make(opt)
    for _ in range(5):
        sched.step()
    state = json.loads(json.dumps(sched.state_dict()))
    optimizer_state = _host(opt.state_dict())
    _, resumed_opt = _two_groups(kind)
    resumed = make(resumed_opt)
    resumed_opt.load_state_dict(optimizer_state)
    resumed.load_state_dict(state)
    assert _trajectory(lambda: resumed_opt.param_groups, resumed.step, kind, 6) == expected[5:]


def test_reduce_lr_on_plateau_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.6, 0.6, 0.6, 0.7, 0.1, 0.2]
    topt = _torch_two_groups(torch, "sgd")
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        topt, factor=0.5, patience=2, cooldown=1, min_lr=[0.02, 0.0]
    )
    _, opt = _two_groups("sgd")
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=[0.02, 0.0])
    for i, value in enumerate(metrics):
        tsched.step(value)
        sched.step(value)
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups], i
        if i == 6:  # resume from here: the same run
            state = json.loads(json.dumps(sched.state_dict()))
            _, opt2 = _two_groups("sgd")
            sched2 = optim.ReduceLROnPlateau(opt2, factor=0.5, patience=2, cooldown=1,
                                             min_lr=[0.02, 0.0])  # fmt: skip
            sched2.load_state_dict(state)
            opt, sched = opt2, sched2
    with pytest.raises(ValueError, match=r"factor: expected a value in \(0, 1\), got 1.5"):
        optim.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(TypeError, match="expected the metric"):
        sched.step()


def test_fit_steps_a_per_batch_schedule_and_a_plateau_schedule(backend: BackendCase) -> None:
    from xpnet.data import DataLoader, Dataset

    rng = np.random.default_rng(0)
    data = Dataset(rng.integers(0, 255, size=(24, 1, 2, 2)).astype(np.uint8),
                   rng.integers(0, 2, size=24), 2, name="toy")  # fmt: skip
    with xpnet.use_backend(backend.name, backend.device):
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, rng=0))
    opt = optim.SGD(model, lr=0.1, momentum=0.9)
    cycle = optim.OneCycleLR(opt, 0.5, epochs=2, steps_per_epoch=3)
    xpnet.fit(model, opt, DataLoader(data, 8), 2, scheduler=cycle, progress=False, log=None)
    assert cycle.last_epoch == 6  # stepped after each of the 2 x 3 batches
    plateau = optim.ReduceLROnPlateau(opt, patience=0)
    history = xpnet.fit(model, opt, DataLoader(data, 8), 3, scheduler=plateau, progress=False,
                        log=None)  # fmt: skip
    assert plateau.last_epoch == 3 and plateau.best == min(r["loss"] for r in history)
