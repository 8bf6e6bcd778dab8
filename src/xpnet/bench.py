"""Speed and memory of xpnet against PyTorch eager, measured side by side.

Every figure is a ratio ``xpnet time / torch time`` measured in the same process, on the
same device, with the two timed in alternation (interleaved repeats) so that clock changes
and background load hit both alike. ``python benchmarks/run.py`` runs the full table and
writes JSON, Markdown and a PNG plot; ``xpnet bench`` runs a short version.

PyTorch is the yardstick, so it must be installed (``pip install 'xpnet[torch]'``).
"""

from __future__ import annotations

import importlib
import os
import statistics
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import backends, nn, optim
from . import functional as F
from .models import lenet5
from .train.compile import CompileWarning, compile_step

__all__ = [
    "BenchResult",
    "count_lenet5_step",
    "format_counts",
    "format_markdown",
    "matmul_gflops",
    "run_benchmarks",
]


@dataclass
class BenchResult:
    """One row of the benchmark table."""

    name: str
    group: str
    xpnet_ms: float
    torch_ms: float
    gflop: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """xpnet time over torch time (below 1: xpnet is faster)."""
        return self.xpnet_ms / self.torch_ms

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict, ratio and GFLOP/s included."""
        row = asdict(self)
        row["ratio"] = self.ratio
        if self.gflop:
            row["xpnet_gflops"] = self.gflop / (self.xpnet_ms / 1e3)
            row["torch_gflops"] = self.gflop / (self.torch_ms / 1e3)
        return row


class _Sides:
    """The backend under test and the torch device it is compared with."""

    def __init__(self, backend: str, device: Any) -> None:
        import torch

        self.torch = torch
        self.backend = backends.set_backend(backend, device)
        self.xp = self.backend.xp
        on_gpu = backend == "cupy" or (backend == "torch" and "cuda" in str(self.backend.device))
        self.torch_device = torch.device("cuda" if on_gpu else "cpu")
        if not on_gpu:
            torch.set_num_threads(os.cpu_count() or 1)

    def sync(self) -> None:
        """Wait for queued GPU work on both sides (no-op on the CPU)."""
        if self.torch_device.type == "cuda":
            self.torch.cuda.synchronize()
        if self.backend.name == "cupy":
            import cupy

            cupy.cuda.Device().synchronize()

    def pair(self, host: np.ndarray) -> tuple[Any, Any]:
        """The same host data as an xpnet-backend array and a torch tensor."""
        return backends.asarray(host), self.torch.as_tensor(host, device=self.torch_device)


def _wait(result: Any) -> None:
    """Wait for an asynchronously computed result (JAX dispatches and returns at once)."""
    for value in result if isinstance(result, tuple | list) else (result,):
        if hasattr(value, "block_until_ready"):
            value.block_until_ready()


def _time(fn: Callable[[], Any], sync: Callable[[], None], number: int) -> float:
    sync()
    start = time.perf_counter()
    result = None
    for _ in range(number):
        result = fn()
    _wait(result)
    sync()
    return (time.perf_counter() - start) / number


def _compare(
    sides: _Sides,
    ours: Callable[[], Any],
    theirs: Callable[[], Any],
    repeats: int,
    min_seconds: float,
) -> tuple[float, float]:
    """Median seconds per call of each, timed in alternation."""
    for fn in (ours, theirs, ours, theirs):  # warm-up: caches, allocators, kernels
        fn()
    once = max(_time(ours, sides.sync, 1), _time(theirs, sides.sync, 1), 1e-6)
    number = max(1, int(min_seconds / once))
    mine, yours = [], []
    for _ in range(repeats):
        mine.append(_time(ours, sides.sync, number))
        yours.append(_time(theirs, sides.sync, number))
    return statistics.median(mine), statistics.median(yours)


def blas_description() -> str:
    """The BLAS NumPy runs on and the CPU kernels it chose (threadpoolctl's report)."""
    try:
        threadpoolctl: Any = importlib.import_module("threadpoolctl")  # ships no types
    except ImportError:
        return "unknown (threadpoolctl is not installed)"
    found = [
        f"{info.get('internal_api')} {info.get('version')} {info.get('architecture', '')}".strip()
        + f", {info.get('num_threads')} threads"
        for info in threadpoolctl.threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return "; ".join(found) or "none found"


def matmul_gflops(size: int = 1024, repeats: int = 5) -> float:
    """float32 matrix-product throughput of the active backend here, in GFLOP/s."""
    active = backends.get_backend()
    rng = np.random.default_rng(0)
    a = backends.asarray(rng.standard_normal((size, size), dtype=np.float32))
    b = backends.asarray(rng.standard_normal((size, size), dtype=np.float32))
    sync = _gpu_sync(active.name)
    a @ b
    best = min(_time(lambda: a @ b, sync, 3) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _gpu_sync(name: str) -> Callable[[], None]:
    if name == "cupy":
        import cupy

        return lambda: cupy.cuda.Device().synchronize()
    return lambda: None


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


def _torch_lenet(torch: Any, device: Any) -> Any:
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
        tmodel = _torch_lenet(torch, sides.torch_device)
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
    tmodel = _torch_lenet(torch, sides.torch_device).eval()
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

    def block_step() -> Any:
        block.train()
        _, pullback = block.forward_vjp(x)
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


def conv_peak_memory(
    sides: _Sides, batch: int = 256, channels: int = 64, size: int = 56
) -> dict[str, float]:
    """Peak temporary memory of a 3x3 conv forward and forward+backward, in MiB.

    NumPy allocations are traced with :mod:`tracemalloc`; CuPy's with a memory-pool hook.
    The figures exclude the inputs and the outputs themselves, which are reported beside.
    """
    rng = np.random.default_rng(3)
    x = backends.asarray(rng.standard_normal((batch, channels, size, size), dtype=np.float32))
    w = backends.asarray(rng.standard_normal((channels, channels, 3, 3), dtype=np.float32))
    dy = backends.asarray(rng.standard_normal((batch, channels, size, size), dtype=np.float32))
    tensor_mib = batch * channels * size * size * 4 / 2**20
    peaks = {}
    for label, run in (
        ("forward", lambda: F.conv2d(x, w, padding=1)),
        ("forward+backward", lambda: F.vjp(F.conv2d, x, w, None, padding=1)[1](dy)),
    ):
        peaks[label] = _peak_mib(sides, run)
    from .config import get_workspace_bytes

    return {
        "batch": batch,
        "channels": channels,
        "size": size,
        "input_mib": tensor_mib,
        "output_mib": tensor_mib,
        "workspace_budget_mib": get_workspace_bytes() / 2**20,
        "peak_forward_mib": peaks["forward"],
        "peak_forward_backward_mib": peaks["forward+backward"],
    }


def _peak_mib(sides: _Sides, run: Callable[[], Any]) -> float:
    if sides.backend.name == "cupy":
        import cupy

        class Peak(cupy.cuda.MemoryHook):  # type: ignore[misc]
            name = "xpnet-peak"

            def __init__(self) -> None:
                self.current = self.peak = 0

            def malloc_postprocess(self, **kw: Any) -> None:
                self.current += kw["mem_size"]
                self.peak = max(self.peak, self.current)

            def free_postprocess(self, **kw: Any) -> None:
                self.current -= kw["mem_size"]

        hook = Peak()
        with hook:
            result = run()
            sides.sync()
        del result
        return float(hook.peak) / 2**20
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak / 2**20


def run_benchmarks(
    backend: str = "numpy",
    device: Any = None,
    *,
    quick: bool = False,
    repeats: int = 7,
    min_seconds: float = 0.05,
    batch_scale: int = 1,
    memory: bool = True,
    log: Callable[[str], None] | None = None,
    parts: tuple[str, ...] = ("conv", "ops", "models"),
) -> dict[str, Any]:
    """Run the benchmark table on one backend against PyTorch on the same device.

    Parameters
    ----------
    backend, device : str, optional
        The xpnet backend (``"numpy"``, ``"cupy"``, ...) and device.
    quick : bool
        A short subset (what ``xpnet bench`` runs).
    repeats : int
        Interleaved timing repeats; medians are reported.
    min_seconds : float
        Minimum duration of one timed repeat.
    batch_scale : int
        Multiply every batch size (e.g. 4 on a GPU for batch 256).
    memory : bool
        Also measure the peak memory of a large convolution.
    parts : tuple of str
        Which rows: ``"conv"`` (convolutions), ``"ops"`` (pooling, linear, loss),
        ``"models"`` (LeNet-5 training steps, eager and compiled, inference, a ResNet
        block).

    Returns
    -------
    dict
        ``{"machine": {...}, "results": [row dicts], "memory": {...}}``.
    """
    sides = _Sides(backend, device)
    machine = {
        "backend": backend,
        "device": str(sides.backend.device),
        "torch": sides.torch.__version__,
        "torch_device": str(sides.torch_device),
        "threads": sides.torch.get_num_threads(),
        "cpu_count": os.cpu_count() or 1,
        "blas": blas_description(),
        "matmul_gflops": matmul_gflops(),
    }
    if sides.torch_device.type == "cuda":
        machine["gpu"] = sides.torch.cuda.get_device_name()
    rows: list[BenchResult] = []
    runs: dict[str, Callable[[], list[BenchResult]]] = {
        "conv": lambda: _conv_rows(sides, repeats, min_seconds, quick, batch_scale),
        "ops": lambda: _op_rows(sides, repeats, min_seconds, batch_scale),
        "models": lambda: _model_rows(sides, repeats, min_seconds, quick, batch_scale),
    }
    unknown = sorted(set(parts) - set(runs))
    if unknown:
        raise ValueError(f"parts: expected some of {sorted(runs)}, got {unknown}")
    for part in parts:
        new = runs[part]()
        rows.extend(new)
        if log is not None:
            for row in new:
                log(
                    f"{row.name:55} xpnet {row.xpnet_ms:9.3f} ms  torch {row.torch_ms:9.3f} ms"
                    f"  ratio {row.ratio:5.2f}"
                )
    report: dict[str, Any] = {"machine": machine, "results": [r.as_dict() for r in rows]}
    if memory and not quick and "conv" in parts:
        report["memory"] = conv_peak_memory(sides)
    if not quick:
        report["step_counts"] = {
            str(batch): {
                "calls": total.calls,
                "launches": total.launches,
                "transfers": total.transfers,
                "syncs": total.syncs,
            }
            for batch in (64, 1024)
            for _, total in count_lenet5_step(batch)[-1:]
        }
    return report


def format_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table (plus the memory figures)."""
    machine = report["machine"]
    gflops = machine["matmul_gflops"]
    lines = [
        f"Backend `{machine['backend']}` on `{machine['device']}` against torch "
        f"{machine['torch']} on `{machine['torch_device']}`"
        + (f" ({machine['gpu']})" if "gpu" in machine else "")
        + f"; {machine['threads']} threads; float32 matmul {gflops:,.0f} GFLOP/s; "
        f"NumPy's BLAS: {machine.get('blas', 'unknown')}.",
        "",
        "| benchmark | xpnet ms | torch ms | ratio | xpnet GFLOP/s | % of matmul |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        rate = row.get("xpnet_gflops")
        rate_text = f"{rate:,.1f}" if rate else ""
        share = f"{100 * rate / gflops:.0f}%" if rate else ""
        lines.append(
            f"| {row['name']} | {row['xpnet_ms']:.3f} | {row['torch_ms']:.3f} | "
            f"{row['ratio']:.2f} | {rate_text} | {share} |"
        )
    counts = report.get("step_counts")
    if counts:
        lines += [
            "",
            "LeNet-5 + Adam training step as on a GPU (op-counting backend, CuPy's rules): "
            + "; ".join(
                f"batch {batch}: {c['launches']} launches, {c['syncs']} host syncs"
                for batch, c in counts.items()
            )
            + ".",
        ]
    memory = report.get("memory")
    if memory:
        lines += [
            "",
            f"Peak temporary memory, 3x3 conv {memory['channels']}->{memory['channels']} on "
            f"{memory['batch']}x{memory['channels']}x{memory['size']}x{memory['size']}: "
            f"forward {memory['peak_forward_mib']:.0f} MiB, forward+backward "
            f"{memory['peak_forward_backward_mib']:.0f} MiB (input {memory['input_mib']:.0f} MiB, "
            f"output {memory['output_mib']:.0f} MiB, workspace budget "
            f"{memory['workspace_budget_mib']:.0f} MiB).",
        ]
    return "\n".join(lines) + "\n"


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
    from .nn.module import forward_vjp
    from .testing import count_ops, register_counting_backend

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


def _main() -> int:
    """``python -m xpnet.bench``: the short table that ``xpnet bench`` prints."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m xpnet.bench", description=__doc__)
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--device", default=None)
    parser.add_argument("--count", action="store_true")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if args.count:
        print(format_counts(count_lenet5_step(args.batch), args.batch), end="")
        return 0
    report = run_benchmarks(args.backend, args.device, quick=True, repeats=5, memory=False)
    print(format_markdown(report), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
