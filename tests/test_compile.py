"""compile_step and fit without per-step syncs.

Oracle: the eager step (value_and_grad + optimizer.step) on an identical model; a compiled
step must leave the same parameters, buffers and optimizer state, to float64 round-off.
The sync tests count host reads on the op-counting backend.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import BackendCase
from test_train import blobs, host_state, loaders
from xpnet import nn, optim
from xpnet.data import DataLoader, Dataset
from xpnet.testing import count_ops, register_counting_backend
from xpnet.train import CompileWarning, compile_step, fit
from xpnet.train import compile as compile_module
from xpnet.train import loop as loop_module


def net(dtype: str = "float64") -> nn.Sequential:
    """Conv, batch norm (buffers), max-pool, dropout with its own generator, linear.

    No conv bias before batch norm: its true gradient is 0, so the computed one is
    round-off, which Adam would blow up into steps that differ with summation order.
    """
    rng = np.random.default_rng(3)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False, dtype=dtype, rng=rng),
        nn.BatchNorm2d(4, dtype=dtype),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.3, rng=np.random.default_rng(11)),
        nn.Linear(64, 3, dtype=dtype, rng=rng),
    )


OPTIMIZERS: list[Callable[[nn.Module], optim.Optimizer]] = [
    lambda m: optim.Adam(m, lr=0.01),
    lambda m: optim.AdamW(m, lr=0.01, amsgrad=True),
    lambda m: optim.SGD(m, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    # Parameter groups with options of their own (compiled into the step).
    lambda m: optim.SGD(
        m,
        lr=0.05,
        momentum=0.9,
        param_groups=[
            {"params": m[0], "lr": 0.01, "weight_decay": 1e-2},
            {"params": [m[1], m[6]], "momentum": 0.5},
        ],
    ),
    lambda m: optim.RMSprop(m, lr=0.01, momentum=0.5, centered=True),
    lambda m: optim.Adagrad(m, lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1),
    lambda m: optim.Adadelta(m, lr=0.5),
]
IDS = ["adam", "adamw_amsgrad", "sgd_nesterov", "sgd_groups", "rmsprop", "adagrad", "adadelta"]


def _batches(backend: BackendCase, dtype: str, count: int = 4) -> list[tuple[Any, Any]]:
    source = blobs(16 * count)
    images = source.images.astype(np.float64) / 255.0
    return [
        (backend.asarray(images[i : i + 16], dtype), backend.asarray(source.labels[i : i + 16]))
        for i in range(0, 16 * count, 16)
    ]


def _assert_states_close(a: dict[str, np.ndarray], b: dict[str, np.ndarray], **tol: float) -> None:
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_allclose(
            np.asarray(a[key], dtype=np.float64), np.asarray(b[key], dtype=np.float64),
            err_msg=key, **tol,
        )  # fmt: skip


@pytest.mark.parametrize("make", OPTIMIZERS, ids=IDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_step_equals_the_eager_step(backend: BackendCase, make: Any, dtype: str) -> None:
    eager_model, compiled_model = net(dtype), net(dtype)
    eager_opt, compiled_opt = make(eager_model), make(compiled_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        step = compile_step(compiled_model, compiled_opt, F.cross_entropy)
    tol = {"rtol": 1e-9, "atol": 1e-12} if dtype == "float64" else {"rtol": 2e-4, "atol": 2e-5}
    for x, y in _batches(backend, dtype):
        loss, grads = xpnet.value_and_grad(eager_model, F.cross_entropy, x, y)
        eager_opt.step(grads)
        compiled_loss = step(x, y)
        assert compiled_loss.shape == ()
        np.testing.assert_allclose(
            float(xpnet.to_numpy(compiled_loss)), float(xpnet.to_numpy(loss)), **tol
        )
    _assert_states_close(host_state(compiled_model), host_state(eager_model), **tol)
    compiled_state = {
        k: xpnet.to_numpy(v) for k, v in compiled_opt.state_dict().items() if k.startswith("state.")
    }
    eager_state = {
        k: xpnet.to_numpy(v) for k, v in eager_opt.state_dict().items() if k.startswith("state.")
    }
    _assert_states_close(compiled_state, eager_state, **tol)
    assert compiled_opt.step_count == eager_opt.step_count == 4
    assert step.compiled == (backend.name in ("jax", "cupy"))  # the backends with compilers


@pytest.mark.parametrize("make", [OPTIMIZERS[0], OPTIMIZERS[2]], ids=["adam", "sgd_nesterov"])
def test_jax_steps_do_not_retrace(make: Any) -> None:
    pytest.importorskip("jax")
    with xpnet.use_backend("jax"):
        model = net("float32")
        step = compile_step(model, make(model), F.cross_entropy)
        batches = _batches(BackendCase("jax", xpnet.get_namespace(), None), "float32", 6)
        step(*batches[0])
        step(*batches[1])
        after_two = step.traces
        for x, y in batches[2:]:
            step(x, y)
    # Dropout's masks are found by one trace; SGD's momentum appears after the first step.
    assert after_two <= 3 and step.traces == after_two


def test_backends_without_a_compiler_say_so_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compile_module, "_said", set())
    model = net()
    with pytest.warns(CompileWarning, match="has no compiler; running the step eagerly"):
        first = compile_step(model, optim.SGD(model), F.cross_entropy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        compile_step(model, optim.SGD(model), F.cross_entropy)  # said already
    assert not first.compiled and "eager" in first.how


def test_compile_step_checks_its_arguments() -> None:
    model, other = net(), net()
    with pytest.raises(ValueError, match="optimizer: was built for a different model"):
        compile_step(model, optim.SGD(other), F.cross_entropy)
    with pytest.raises(TypeError, match="model: expected an xpnet Module, got list"):
        compile_step([], optim.SGD(model), F.cross_entropy)  # type: ignore[arg-type]


def test_fit_compiled_equals_fit_eager(backend: BackendCase) -> None:
    histories, states = [], []
    for compiled in (False, True):
        model = net()
        kwargs = {"mean": 0.3, "std": 0.4, "dtype": "float64"}
        train = DataLoader(blobs(96), batch_size=16, shuffle=True, **kwargs)
        test = DataLoader(blobs(48, seed=1), batch_size=16, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CompileWarning)
            history = fit(
                model, optim.Adam(model, lr=0.01), train, 2, test_loader=test,
                progress=False, log=None, compile=compiled,
            )  # fmt: skip
        histories.append(history)
        states.append(host_state(model))
    for eager, compiled in zip(*histories, strict=True):
        for key in ("loss", "accuracy", "test_loss", "test_accuracy"):
            assert compiled[key] == pytest.approx(eager[key], rel=1e-9, abs=1e-12), key
    _assert_states_close(states[1], states[0], rtol=1e-9, atol=1e-12)


def test_fit_refuses_labels_the_model_cannot_output() -> None:
    source = blobs(32)
    labels = source.labels.copy()
    labels[[3, 7]] = [5, 4]
    train = DataLoader(Dataset(source.images, labels, 6, name="six-class blobs"), batch_size=16)
    model = net("float32")  # 3 outputs
    before = host_state(model)
    with pytest.raises(
        ValueError,
        match=r"six-class blobs: labels must be class indices in \[0, 3\) \(the model has 3 "
        r"outputs\), got 4, 5$",
    ):
        fit(model, optim.SGD(model), train, 1, progress=False, log=None)
    _assert_states_close(host_state(model), before, rtol=0, atol=0)  # nothing trained


def test_fit_reads_the_device_only_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Steps never wait for the device: every host read of an epoch happens in the block
    # reads (every READ_EVERY_STEPS steps here) or in the end-of-epoch weight check.
    register_counting_backend("counting_fit")
    monkeypatch.setattr(loop_module, "READ_EVERY_SECONDS", float("inf"))
    monkeypatch.setattr(loop_module, "READ_EVERY_STEPS", 4)
    reads: list[int] = []
    real_read = loop_module._Totals.read

    def counted_read(self: Any) -> None:
        reads.append(len(self.pending))
        with counts.section("reads"):
            real_read(self)

    monkeypatch.setattr(loop_module._Totals, "read", counted_read)
    try:
        with xpnet.use_backend("counting_fit"):
            model = net("float32")
            train, _ = loaders(batch_size=8)  # 12 steps
            with count_ops() as counts:
                fit(model, optim.Adam(model), train, 1, progress=False, log=None)
    finally:
        xpnet.unregister_backend("counting_fit")
    assert reads == [4, 4, 4, 0]
    weight_checks = len(list(model.named_parameters()))
    assert counts.syncs - counts.sections["reads"].syncs == weight_checks, counts.sync_sites


def test_compiled_evaluation_equals_eager_with_an_uneven_last_batch(backend: BackendCase) -> None:
    # 40 examples in batches of 16: the last batch of 8 is padded to 16 and masked on JAX.
    model = net()
    loader = DataLoader(blobs(40, seed=2), batch_size=16, mean=0.3, std=0.4, dtype="float64")
    _, grads = xpnet.value_and_grad(model, F.cross_entropy, *next(iter(loader)))
    optim.SGD(model, lr=0.5).step(grads)  # batch-norm statistics and weights move off init
    eager = xpnet.evaluate(model, loader)
    compiled = xpnet.evaluate(model, loader, compile=True)
    assert compiled["accuracy"] == eager["accuracy"]
    assert compiled["loss"] == pytest.approx(eager["loss"], rel=1e-12)
    logits = np.concatenate([xpnet.to_numpy(model.eval()(x)) for x, _ in loader])
    labels = np.concatenate([xpnet.to_numpy(y) for _, y in loader])
    assert eager["accuracy"] == np.mean(np.argmax(logits, axis=1) == labels)


class ReplayDevice:
    """The CUDA-graph step's device adapter on the CPU: capture keeps the function, a
    launch runs it again; copies write into the existing arrays."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self.captures = 0
        self.launches = 0

    def capture(self, body: Callable[[], None]) -> Callable[[], None]:
        self.captures += 1
        return body

    def launch(self, graph: Callable[[], None]) -> None:
        self.launches += 1
        graph()

    def copy_into(self, target: Any, source: Any) -> None:
        target[...] = source

    def upload(self, target: Any, host: np.ndarray) -> None:
        target[...] = self.xp.asarray(
            np.asarray(host, dtype=np.dtype(str(target.dtype).split(".")[-1]))
        )

    def copy(self, array: Any) -> Any:
        return self.xp.asarray(array, copy=True)


@pytest.mark.skip_backends(
    "jax", reason="a CUDA graph writes its buffers in place; JAX arrays are immutable"
)
@pytest.mark.parametrize("make", OPTIMIZERS, ids=IDS)
def test_graph_step_logic_equals_the_eager_step(backend: BackendCase, make: Any) -> None:
    # Everything of the CUDA-graph step but the CUDA runtime: static buffers, parameters as
    # views of the flat buffer, state written in place, masks and scalars refilled before
    # every launch, the warm-up step, and weights loaded between launches.
    from xpnet.train.compile._cuda_graphs import CudaGraphStep

    eager_model, graph_model = net(), net()
    eager_opt, graph_opt = make(eager_model), make(graph_model)
    device = ReplayDevice(backend.xp)
    step = CudaGraphStep(graph_model, graph_opt, F.cross_entropy, device=device)
    batches = _batches(backend, "float64", 5)
    for index, (x, y) in enumerate(batches):
        if index == 3:  # weights replaced between launches are copied into the graph's
            values = host_state(eager_model)
            eager_model.load_state_dict(values)
            graph_model.load_state_dict(values)
        loss, grads = xpnet.value_and_grad(eager_model, F.cross_entropy, x, y)
        eager_opt.step(grads)
        graph_loss, correct = step.run(x, y)
        assert float(xpnet.to_numpy(graph_loss)) == pytest.approx(
            float(xpnet.to_numpy(loss)), rel=1e-12
        )
        assert correct.shape == ()
    assert (device.captures, device.launches) == (1, 4)  # call 1 warms up, 2 captures
    _assert_states_close(host_state(graph_model), host_state(eager_model), rtol=1e-12, atol=1e-14)
    graph_state, eager_state = graph_opt.state_dict(), eager_opt.state_dict()
    assert graph_state.keys() == eager_state.keys()
    for key, value in eager_state.items():
        np.testing.assert_allclose(np.asarray(xpnet.to_numpy(graph_state[key]), dtype=float),
                                   np.asarray(xpnet.to_numpy(value), dtype=float),
                                   rtol=1e-12, atol=1e-14, err_msg=key)  # fmt: skip


class SkipNet(nn.Module):
    """A model written by hand: batch norm, an in-place add, a concatenated branch, a crop
    by slicing, dropout with its own generator (for 1x8x8 images, like ``net``)."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(5)
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False, dtype="float64", rng=rng)
        self.bn = nn.BatchNorm2d(4, dtype="float64")
        self.side = nn.Conv2d(1, 2, 1, dtype="float64", rng=rng)
        self.drop = nn.Dropout(0.3, rng=np.random.default_rng(11))
        self.head = nn.Linear(6 * 3 * 3, 3, dtype="float64", rng=rng)

    def forward(self, x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        h = F.relu(self.bn(self.conv(x)))
        h += 0.5 * self.conv(x)
        both = F.max_pool2d(xp.concat([h, self.side(x)], axis=1), 2)[:, :, :3, 1:]
        return self.head(self.drop(xp.reshape(both, (both.shape[0], -1))))


def test_compiled_steps_of_a_user_written_model(backend: BackendCase) -> None:
    """compile_step (jax.jit on JAX) and the CUDA-graph step's logic (its CPU stand-in,
    except on JAX) take a model of one's own, as the eager step does."""
    from xpnet.train.compile._cuda_graphs import CudaGraphStep

    models = [SkipNet() for _ in range(3)]
    opts = [optim.Adam(m, lr=0.01) for m in models]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CompileWarning)
        steps = [compile_step(models[1], opts[1], F.cross_entropy)]
    if backend.name != "jax":
        device = ReplayDevice(backend.xp)
        steps.append(CudaGraphStep(models[2], opts[2], F.cross_entropy, device=device))
    for x, y in _batches(backend, "float64", 4):
        loss, grads = xpnet.value_and_grad(models[0], F.cross_entropy, x, y)
        opts[0].step(grads)
        for step in steps:
            np.testing.assert_allclose(float(xpnet.to_numpy(step(x, y))),
                                       float(xpnet.to_numpy(loss)), rtol=1e-9)  # fmt: skip
    for model in models[1 : 1 + len(steps)]:
        _assert_states_close(host_state(model), host_state(models[0]), rtol=1e-9, atol=1e-12)
