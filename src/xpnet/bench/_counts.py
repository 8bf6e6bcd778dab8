"""What a LeNet-5 training step costs a GPU, counted layer by layer on the op-counting
backend (``xpnet bench --count``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import backends, nn, optim
from .. import functional as F
from ..models import lenet5

__all__ = ["count_lenet5_step", "format_counts"]


def count_lenet5_step(batch: int = 64) -> list[tuple[str, Any]]:
    """Per-layer array calls, GPU launches, transfers and host syncs of one LeNet-5 + Adam
    training step, counted on the op-counting backend (GPU paths, CuPy's rules).

    The step is run as ``value_and_grad`` does (each layer's forward, the loss and its
    pullback, each layer's pullback) plus ``Adam.step``, after one step that builds the
    cached index tables and the optimizer state.

    Returns
    -------
    list of (str, OpCounts)
        One row per part, in execution order, and ``("total", ...)`` last.
    """
    from ..nn.module import forward_vjp
    from ..testing import count_ops, register_counting_backend

    register_counting_backend("counting_bench")
    try:
        with backends.use_backend("counting_bench"):
            model = lenet5(rng=np.random.default_rng(0))
            opt = optim.Adam(model)
            rng = np.random.default_rng(1)
            x = backends.asarray(rng.standard_normal((batch, 1, 28, 28), dtype=np.float32))
            y = backends.asarray(rng.integers(0, 10, size=batch), dtype="int64")
            _, grads = nn.value_and_grad(model, F.cross_entropy, x, y)
            opt.step(grads)
            with count_ops() as counts:
                model.train()
                h, pullbacks = x, []
                for index, (name, layer) in enumerate(model.children()):
                    with counts.section(f"{name} {type(layer).__name__} forward"):
                        h, pullback = forward_vjp(layer, h, input_grad=index > 0)
                    pullbacks.append((name, layer, pullback))
                with counts.section("cross_entropy forward"):
                    loss, loss_pullback = F.vjp(F.cross_entropy, h, y)
                with counts.section("cross_entropy pullback"):
                    (d,) = loss_pullback(backends.get_namespace(loss).ones_like(loss))[:1]
                grads = {}
                for name, layer, pullback in reversed(pullbacks):
                    with counts.section(f"{name} {type(layer).__name__} pullback"):
                        d, local = pullback(d)
                    grads.update({f"{name}.{k}": v for k, v in local.items()})
                with counts.section("Adam.step"):
                    opt.step(grads)
    finally:
        backends.unregister_backend("counting_bench")
    return [*counts.sections.items(), ("total", counts)]


def format_counts(rows: list[tuple[str, Any]], batch: int) -> str:
    """The rows of :func:`count_lenet5_step` as a text table."""
    lines = [
        f"LeNet-5 + Adam training step, batch {batch}, as on a GPU (CuPy's launch rules)",
        "",
        f"{'part':30} {'calls':>6} {'launches':>9} {'transfers':>10} {'syncs':>6}",
    ]
    for name, c in rows:
        if name == "total":
            lines.append("-" * 65)
        lines.append(f"{name:30} {c.calls:6} {c.launches:9} {c.transfers:10} {c.syncs:6}")
    lines += [
        "",
        "calls: array-producing calls, views included; launches: GPU kernels they cost;",
        "transfers: host-to-device copies; syncs: host reads that wait for the device.",
        "torch eager runs this step in about 50 launches and no syncs.",
    ]
    return "\n".join(lines) + "\n"
