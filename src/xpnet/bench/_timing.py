"""Interleaved timing of xpnet against torch on one device, and the machine's figures."""

from __future__ import annotations

import importlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import backends

__all__ = [
    "NOISY_SPREAD",
    "BenchResult",
    "blas_description",
    "compiled_kernels_description",
    "matmul_gflops",
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
        # Per timed comparison, in order: the larger of the two sides' slowest over fastest
        # repeat (a busy machine shows as a wide spread).
        self.spreads: list[float] = []
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
    sides.spreads.append(max(max(t) / max(min(t), 1e-12) for t in (mine, yours)))
    return statistics.median(mine), statistics.median(yours)


#: Repeats whose slowest took this much longer than their fastest make a row suspect.
NOISY_SPREAD = 1.5


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


def compiled_kernels_description() -> str:
    """Whether NumPy's compiled kernels (Numba) run, and on how many threads: the NumPy
    rows of a benchmark depend on it."""
    from ..functional import _numba

    if not _numba.available():
        return "off (Numba is not installed: pip install 'xpnet[numba]')"
    numba: Any = importlib.import_module("numba")
    return f"Numba {numba.__version__}, {_numba.threads()} threads"


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
