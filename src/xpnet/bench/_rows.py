"""The rows of the table: convolutions, other ops, and whole models (LeNet-5 training steps,
eager and compiled, inference, a ResNet block), each against its torch counterpart."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backends, nn, optim
from .. import functional as F
from ..models import lenet5
from ..train.compile import CompileWarning, compile_step
from ._timing import BenchResult, _compare, _Sides

__all__ = ["CONV_SHAPES", "QUICK_SHAPES", "torch_lenet5"]


# (name, batch, in channels, size, out channels, kernel, stride, padding, groups)
CONV_SHAPES: list[tuple[str, int, int, int, int, int, int, int, int]] = [
    ("lenet conv1 1->6 5x5", 64, 1, 28, 6, 5, 1, 2, 1),
    ("lenet conv2 6->16 5x5", 64, 6, 14, 16, 5, 1, 0, 1),
    ("3x3 32->32 s1 28px", 64, 32, 28, 32, 3, 1, 1, 1),
    ("3x3 32->32 s2 28px", 64, 32, 28, 32, 3, 2, 1, 1),
    ("3x3 64->64 s1 14px", 64, 64, 14, 64, 3, 1, 1, 1),
    ("3x3 64->64 s2 14px", 64, 64, 14, 64, 3, 2, 1, 1),
    ("3x3 128->128 s1 7px", 64, 128, 7, 128, 3, 1, 1, 1),
    ("3x3 128->128 s2 7px", 64, 128, 7, 128, 3, 2, 1, 1),
    ("1x1 64->128 14px", 64, 64, 14, 128, 1, 1, 0, 1),
    ("depthwise 3x3 64 14px", 64, 64, 14, 64, 3, 1, 1, 64),
]
QUICK_SHAPES = {"lenet conv2 6->16 5x5", "3x3 64->64 s1 14px"}


def _conv_rows(
    sides: _Sides, repeats: int, min_seconds: float, quick: bool, batch_scale: int
) -> list[BenchResult]:
    torch = sides.torch
    rng = np.random.default_rng(0)
    rows = []
    for name, batch, cin, size, cout, k, stride, pad, groups in CONV_SHAPES:
        if quick and name not in QUICK_SHAPES:
            continue
        batch *= batch_scale
        x_host = rng.standard_normal((batch, cin, size, size), dtype=np.float32)
        w_host = rng.standard_normal((cout, cin // groups, k, k), dtype=np.float32) * 0.1
        b_host = rng.standard_normal((cout,), dtype=np.float32)
        (x, tx), (w, tw), (b, tb) = sides.pair(x_host), sides.pair(w_host), sides.pair(b_host)
        kwargs = {"stride": stride, "padding": pad, "groups": groups}
        out = (size + 2 * pad - k) // stride + 1
        flop = 2.0 * batch * cout * out * out * (cin // groups) * k * k
        dy_host = rng.standard_normal((batch, cout, out, out), dtype=np.float32)
        dy, tdy = sides.pair(dy_host)

        def forward(x: Any = x, w: Any = w, b: Any = b, kw: Any = kwargs) -> Any:
            return F.conv2d(x, w, b, **kw)

        def torch_forward(tx: Any = tx, tw: Any = tw, tb: Any = tb, kw: Any = kwargs) -> Any:
            with torch.no_grad():
                return torch.nn.functional.conv2d(tx, tw, tb, **kw)

        ours, theirs = _compare(sides, forward, torch_forward, repeats, min_seconds)
        rows.append(
            BenchResult(f"conv2d fwd: {name}", "conv forward", ours * 1e3, theirs * 1e3, flop / 1e9)
        )

        def both(x: Any = x, w: Any = w, b: Any = b, dy: Any = dy, kw: Any = kwargs) -> Any:
            _, pullback = F.vjp(F.conv2d, x, w, b, **kw)
            return pullback(dy)

        leaves = [t.clone().requires_grad_(True) for t in (tx, tw, tb)]

        def torch_both(leaves: Any = leaves, tdy: Any = tdy, kw: Any = kwargs) -> Any:
            y = torch.nn.functional.conv2d(*leaves, **kw)
            return torch.autograd.grad(y, leaves, tdy)

        ours, theirs = _compare(sides, both, torch_both, repeats, min_seconds)
        rows.append(
            BenchResult(
                f"conv2d fwd+bwd: {name}",
                "conv forward+backward",
                ours * 1e3,
                theirs * 1e3,
                3 * flop / 1e9,
            )
        )
    return rows


def _op_rows(
    sides: _Sides, repeats: int, min_seconds: float, batch_scale: int
) -> list[BenchResult]:
    torch = sides.torch
    tf = torch.nn.functional
    rng = np.random.default_rng(1)
    rows = []
    x_host = rng.standard_normal((64 * batch_scale, 32, 28, 28), dtype=np.float32)
    x, tx = sides.pair(x_host)
    pooled = x_host[:, :, ::2, ::2]
    dy, tdy = sides.pair(np.ascontiguousarray(pooled))
    cases: list[tuple[str, Callable[..., Any], Callable[..., Any]]] = [
        ("max_pool2d 2x2", F.max_pool2d, tf.max_pool2d),
        ("avg_pool2d 2x2", F.avg_pool2d, tf.avg_pool2d),
    ]
    for label, ours_op, theirs_op in cases:
        leaf = tx.clone().requires_grad_(True)

        def ours(op: Any = ours_op) -> Any:
            _, pullback = F.vjp(op, x, 2)
            return pullback(dy)

        def theirs(op: Any = theirs_op, leaf: Any = leaf) -> Any:
            return torch.autograd.grad(op(leaf, 2), [leaf], tdy)

        t1, t2 = _compare(sides, ours, theirs, repeats, min_seconds)
        rows.append(BenchResult(f"{label} fwd+bwd (64x32x28x28)", "ops", t1 * 1e3, t2 * 1e3))

    batch = 256 * batch_scale
    a_host = rng.standard_normal((batch, 400), dtype=np.float32)
    w_host = rng.standard_normal((120, 400), dtype=np.float32) * 0.05
    b_host = rng.standard_normal((120,), dtype=np.float32)
    g_host = rng.standard_normal((batch, 120), dtype=np.float32)
    (a, ta), (w, tw), (b, tb), (g, tg) = (sides.pair(h) for h in (a_host, w_host, b_host, g_host))
    leaves = [t.clone().requires_grad_(True) for t in (ta, tw, tb)]

    def linear_ours() -> Any:
        _, pullback = F.vjp(F.linear, a, w, b)
        return pullback(g)

    def linear_theirs() -> Any:
        return torch.autograd.grad(tf.linear(*leaves), leaves, tg)

    t1, t2 = _compare(sides, linear_ours, linear_theirs, repeats, min_seconds)
    rows.append(
        BenchResult(
            f"linear 400->120 fwd+bwd (batch {batch})",
            "ops",
            t1 * 1e3,
            t2 * 1e3,
            3 * 2.0 * batch * 400 * 120 / 1e9,
        )
    )

    logits_host = rng.standard_normal((batch, 10), dtype=np.float32)
    target_host = rng.integers(0, 10, size=batch)
    logits, tlogits = sides.pair(logits_host)
    target = backends.asarray(target_host, dtype="int64")
    ttarget = torch.as_tensor(target_host, device=sides.torch_device)
    leaf = tlogits.clone().requires_grad_(True)

    def ce_ours() -> Any:
        loss, pullback = F.vjp(F.cross_entropy, logits, target)
        return pullback(sides.xp.ones_like(loss))

    def ce_theirs() -> Any:
        return torch.autograd.grad(tf.cross_entropy(leaf, ttarget), [leaf])

    t1, t2 = _compare(sides, ce_ours, ce_theirs, repeats, min_seconds)
    rows.append(BenchResult(f"cross_entropy fwd+bwd (batch {batch})", "ops", t1 * 1e3, t2 * 1e3))
    return rows


def torch_lenet5(torch: Any, device: Any = "cpu") -> Any:
    """The torch twin of :func:`xpnet.models.lenet5` (same layers, same state_dict keys)."""
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 120),
        tnn.ReLU(),
        tnn.Linear(120, 84),
        tnn.ReLU(),
        tnn.Linear(84, 10),
    ).to(device)


def _torch_block(torch: Any, device: Any, channels: int) -> Any:
    tnn = torch.nn
    base: Any = tnn.Module

    class Block(base):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.body = tnn.Sequential(
                tnn.Conv2d(channels, channels, 3, padding=1, bias=False),
                tnn.BatchNorm2d(channels),
                tnn.ReLU(),
                tnn.Conv2d(channels, channels, 3, padding=1, bias=False),
                tnn.BatchNorm2d(channels),
            )

        def forward(self, x: Any) -> Any:
            return torch.relu(self.body(x) + x)

    return Block().to(device)


def _model_rows(
    sides: _Sides, repeats: int, min_seconds: float, quick: bool, batch_scale: int
) -> list[BenchResult]:
    torch = sides.torch
    tf = torch.nn.functional
    rng = np.random.default_rng(2)
    rows = []
    batches = [64] if quick else [64, 256]
    for batch in (b * batch_scale for b in batches):
        model = lenet5(rng=np.random.default_rng(0))
        tmodel = torch_lenet5(torch, sides.torch_device)
        model.load_state_dict({k: v.detach().cpu().numpy() for k, v in tmodel.state_dict().items()})
        opt = optim.Adam(model, lr=1e-3)
        topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
        x_host = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
        y_host = rng.integers(0, 10, size=batch)
        x, tx = sides.pair(x_host)
        y = backends.asarray(y_host, dtype="int64")
        ty = torch.as_tensor(y_host, device=sides.torch_device)

        def step(model: Any = model, opt: Any = opt, x: Any = x, y: Any = y) -> Any:
            loss, grads = nn.value_and_grad(model, F.cross_entropy, x, y)
            opt.step(grads)
            return loss

        def torch_step(tmodel: Any = tmodel, topt: Any = topt, tx: Any = tx, ty: Any = ty) -> Any:
            topt.zero_grad(set_to_none=True)
            loss = tf.cross_entropy(tmodel(tx), ty)
            loss.backward()
            topt.step()
            return loss

        t1, t2 = _compare(sides, step, torch_step, repeats, min_seconds)
        rows.append(
            BenchResult(
                f"LeNet-5 train step (batch {batch}, Adam)",
                "end to end",
                t1 * 1e3,
                t2 * 1e3,
                extra={"images_per_second": batch / t1, "torch_images_per_second": batch / t2},
            )
        )
        compiled_model = lenet5(rng=np.random.default_rng(0))
        compiled_model.load_state_dict(model.state_dict())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CompileWarning)
            compiled = compile_step(compiled_model, optim.Adam(compiled_model, lr=1e-3))
        if compiled.compiled:  # a backend with a step compiler: time that step too

            def compiled_step(step: Any = compiled, x: Any = x, y: Any = y) -> Any:
                return step(x, y)

            t1, t2 = _compare(sides, compiled_step, torch_step, repeats, min_seconds)
            rows.append(
                BenchResult(
                    f"LeNet-5 train step (batch {batch}, Adam), compiled",
                    "end to end",
                    t1 * 1e3,
                    t2 * 1e3,
                    extra={
                        "images_per_second": batch / t1,
                        "torch_images_per_second": batch / t2,
                    },
                )
            )

    batch = 256 * batch_scale
    model = lenet5(rng=np.random.default_rng(0)).eval()
    tmodel = torch_lenet5(torch, sides.torch_device).eval()
    x, tx = sides.pair(rng.standard_normal((batch, 1, 28, 28), dtype=np.float32))

    def infer() -> Any:
        return model(x)

    def torch_infer() -> Any:
        with torch.no_grad():
            return tmodel(tx)

    t1, t2 = _compare(sides, infer, torch_infer, repeats, min_seconds)
    rows.append(
        BenchResult(
            f"LeNet-5 inference (batch {batch})",
            "end to end",
            t1 * 1e3,
            t2 * 1e3,
            extra={"images_per_second": batch / t1, "torch_images_per_second": batch / t2},
        )
    )
    if quick:
        return rows

    channels, batch = 32, 32 * batch_scale
    tblock = _torch_block(torch, sides.torch_device, channels)
    body = nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
    )
    block = nn.Sequential(nn.Residual(body), nn.ReLU())
    block.load_state_dict(
        {"0." + k: v.detach().cpu().numpy() for k, v in tblock.state_dict().items()}
    )
    x_host = rng.standard_normal((batch, channels, 28, 28), dtype=np.float32)
    x, tx = sides.pair(x_host)
    dy, tdy = sides.pair(rng.standard_normal(x_host.shape, dtype=np.float32))
    leaf = tx.clone().requires_grad_(True)

    params = dict(block.named_parameters())

    def run_block(weights: dict[str, Any], images: Any) -> Any:
        return nn.functional_call(block, weights, images)

    def block_step() -> Any:
        block.train()
        _, pullback = F.vjp(run_block, params, x)
        return pullback(dy)

    def torch_block_step() -> Any:
        out = tblock(leaf)
        return torch.autograd.grad(out, [leaf, *tblock.parameters()], tdy)

    t1, t2 = _compare(sides, block_step, torch_block_step, repeats, min_seconds)
    rows.append(
        BenchResult(
            f"ResNet basic block fwd+bwd ({batch}x{channels}x28x28)",
            "end to end",
            t1 * 1e3,
            t2 * 1e3,
        )
    )
    return rows
