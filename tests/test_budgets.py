"""Launch and sync budgets of a training step, counted on the op-counting backend.

On a GPU every array operation is a kernel launch and every host read stalls the device
queue, so these counts decide GPU speed at LeNet scale (torch eager: about 50 launches per
step, no syncs). They are deterministic, so they are held here: a change that adds launches
or a sync to the step fails CI. The counting backend takes the GPU paths and counts by
CuPy's rules (``xpnet.testing``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from xpnet import nn, optim
from xpnet.models import lenet5
from xpnet.testing import OpCounts, count_ops, register_counting_backend

STEP_LAUNCH_BUDGET = 100


@pytest.fixture(scope="module")
def counting() -> Iterator[None]:
    register_counting_backend("counting_budget")
    with xpnet.use_backend("counting_budget"):
        yield
    xpnet.unregister_backend("counting_budget")


def _batch(batch: int, seed: int = 0) -> tuple[object, object]:
    rng = np.random.default_rng(seed)
    x = xpnet.asarray(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    return x, xpnet.asarray(rng.integers(0, 10, batch), dtype="int64")


def _step_counts(batch: int) -> OpCounts:
    """The counts of a LeNet-5 + Adam step after the first (which builds the cached index
    tables and the optimizer's state once)."""
    model = lenet5(rng=0)
    opt = optim.Adam(model)
    x, y = _batch(batch)
    for _ in range(2):
        with count_ops() as counts:
            _, grads = xpnet.value_and_grad(model, F.cross_entropy, x, y)
            opt.step(grads)
    return counts


@pytest.mark.parametrize("batch", [64, 1024])
def test_lenet5_adam_step_fits_the_launch_budget_without_syncs(counting, batch) -> None:
    counts = _step_counts(batch)
    assert counts.launches <= STEP_LAUNCH_BUDGET, counts.by_operation
    assert counts.syncs == 0, counts.sync_sites
    assert counts.transfers <= 1  # the gradients' pointer table for CuPy's concatenate


def test_step_launches_do_not_grow_with_the_batch(counting) -> None:
    assert _step_counts(64).launches == _step_counts(1024).launches


@pytest.mark.parametrize(
    "make",
    [lambda m: optim.Adam(m), lambda m: optim.AdamW(m), lambda m: optim.SGD(m, momentum=0.9)],
)
def test_optimizer_launches_do_not_grow_with_the_number_of_tensors(counting, make) -> None:
    def launches(layers: int) -> int:
        model = nn.Sequential(*[nn.Linear(8, 8, rng=i) for i in range(layers)])
        opt = make(model)
        grads = {k: xpnet.asarray(np.ones(tuple(v.shape), np.float32))
                 for k, v in model.named_parameters()}  # fmt: skip
        opt.step(grads)
        with count_ops() as counts:
            opt.step(grads)
        assert counts.syncs == 0
        return counts.launches

    assert launches(12) == launches(5)  # 24 and 10 tensors, one flat update


def test_conv_forward_and_backward_fit_in_eleven_launches(counting) -> None:
    # Padded 3x3 with bias: gather, mask, GEMM, bias | cotangent layout, dW GEMM, db |
    # dX GEMM, transposed gather, mask, sum.
    rng = np.random.default_rng(1)
    x = xpnet.asarray(rng.standard_normal((32, 8, 14, 14)).astype(np.float32))
    w = xpnet.asarray(rng.standard_normal((16, 8, 3, 3)).astype(np.float32))
    b = xpnet.asarray(np.zeros(16, np.float32))
    dy = xpnet.asarray(rng.standard_normal((32, 16, 14, 14)).astype(np.float32))
    F.vjp(F.conv2d, x, w, b, padding=1)[1](dy)  # builds the index tables
    with count_ops() as counts:
        _, pullback = F.vjp(F.conv2d, x, w, b, padding=1)
        pullback(dy)
    assert counts.launches <= 11, counts.by_operation
    assert counts.syncs == 0 and counts.transfers == 0


def test_cross_entropy_forward_and_backward_budget(counting) -> None:
    logits = xpnet.asarray(np.random.default_rng(2).standard_normal((64, 10)).astype(np.float32))
    target = xpnet.asarray(np.arange(64) % 10, dtype="int64")
    F.cross_entropy(logits, target)
    with count_ops() as counts:
        loss, pullback = F.vjp(F.cross_entropy, logits, target)
        pullback(xpnet.get_namespace().ones_like(loss))
    assert counts.launches <= 28, counts.by_operation
    assert counts.syncs == 0


#: Peak host memory of one NumPy LeNet-5 + Adam step at batch 256 (tracemalloc), in MiB:
#: 71.2 MiB when every layer had a hand-written forward_vjp (commit 1eb4cd4), plus the 10%
#: the define-by-run recording was allowed. It measures 61.1 MiB: each node's pullback, and
#: the forward values it holds, is released as the backward sweep passes it.
STEP_PEAK_BUDGET_MIB = 78.3


def test_lenet5_step_peak_memory_fits_the_budget() -> None:
    import tracemalloc

    with xpnet.use_backend("numpy"):
        model = lenet5(rng=0)
        opt = optim.Adam(model)
        x, y = _batch(256)

        def step() -> None:
            _, grads = xpnet.value_and_grad(model, F.cross_entropy, x, y)
            opt.step(grads)

        step()  # the cached index tables and the optimizer's state
        tracemalloc.start()
        try:
            step()
            peak = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
    assert peak <= STEP_PEAK_BUDGET_MIB, f"peak {peak:.1f} MiB"


#: Launches of a ResNet-20 + SGD (momentum) training step on the counting backend, measured
#: 862 (938 before batch norm folded its per-channel factors). torch's eager step
#: dispatches 307 aten ops (tests/torch_models.py's twin): 2.8x. Of xpnet's, 532 are the 19
#: batch norms (16 forward, 12 backward each, against torch's one fused op each way):
#: closing the gap to the issue's 2x needs a fused batch-norm kernel.
RESNET20_STEP_LAUNCH_BUDGET = 870


def _torch_step_ops(batch: int) -> int | None:
    """aten ops dispatched by the same step in torch (eager, foreach SGD), or None."""
    try:
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
    except ImportError:
        return None
    import torch_models

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    model = torch_models.CifarResNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=True)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    for _ in range(2):  # the second step, as for xpnet: momentum buffers exist
        Count.calls = 0
        with Count():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return Count.calls


def test_resnet20_step_fits_its_launch_budget_without_syncs(counting) -> None:
    from xpnet.models import resnet20

    model = resnet20(rng=0)
    opt = optim.SGD(model, lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    x = xpnet.asarray(rng.standard_normal((8, 3, 32, 32)).astype(np.float32))
    y = xpnet.asarray(rng.integers(0, 10, 8), dtype="int64")
    for _ in range(2):
        with count_ops() as counts:
            _, grads = xpnet.value_and_grad(model, F.cross_entropy, x, y)
            opt.step(grads)
    assert counts.syncs == 0, counts.sync_sites
    torch_ops = _torch_step_ops(8)
    ratio = (
        "" if torch_ops is None else f" ({counts.launches / torch_ops:.2f}x torch's {torch_ops})"
    )
    assert counts.launches <= RESNET20_STEP_LAUNCH_BUDGET, f"{counts.launches}{ratio}"
    if torch_ops is not None:
        assert 280 <= torch_ops <= 340  # the reference itself: a torch upgrade shows here
