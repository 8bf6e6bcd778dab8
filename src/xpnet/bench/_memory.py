"""Peak temporary memory of a large convolution (tracemalloc on the host, a memory-pool hook
on CuPy)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import backends
from .. import functional as F
from ._timing import _Sides

__all__ = ["conv_peak_memory"]


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
    from ..config import get_workspace_bytes

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
