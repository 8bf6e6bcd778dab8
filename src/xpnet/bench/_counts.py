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

    The step is run as ``value_and_grad`` runs it (the model's forward and the loss,
    recorded; then the sweep back through the recorded pullbacks) plus ``Adam.step``,
    after one step that builds the cached index tables and the optimizer state. Each
    pullback is counted under the layer whose forward recorded it.

    Returns
    -------
    list of (str, OpCounts)
        One row per part, in execution order, and ``("total", ...)`` last.
    """
    from ..functional._autodiff import backward, constant, leaf, new_trace, observe_pullbacks
    from ..nn.grad import holding
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
            trace = new_trace()
            params = dict(model.named_parameters())
            leaves = {name: leaf(value, trace, name) for name, value in params.items()}
            with count_ops() as counts:
                with holding(model, leaves):
                    model.train()
                    h = constant(x)
                    parts: list[tuple[int, str]] = []  # (last node recorded, layer), in order
                    for name, layer in model.named_children():
                        label = f"{name} {type(layer).__name__}"
                        with counts.section(f"{label} forward"):
                            h = layer(h)
                        parts.append((h._node.order, label))
                    with counts.section("cross_entropy forward"):
                        loss = F.cross_entropy(h, constant(y))
                    parts.append((loss._node.order, "cross_entropy"))

                    def around(node: Any) -> Any:
                        label = next(text for last, text in parts if node.order <= last)
                        return counts.section(f"{label} pullback")

                    with observe_pullbacks(around):
                        xp = loss._xp
                        found = backward([(loss, xp.ones_like(loss._value))], xp)
                    grads = {n: found[t._node] for n, t in leaves.items() if t._node in found}
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
