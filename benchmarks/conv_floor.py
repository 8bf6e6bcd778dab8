"""How close can an im2col convolution get to PyTorch here? Its floor against torch's time.

    python benchmarks/conv_floor.py [--repeats 9]

For each 3x3 row of the benchmark table (batch 64, float32) this times, in one process:

* torch's convolution forward + backward (input and weight gradients);
* the floor of any convolution built from standard array operations and a GEMM: the three
  GEMMs (forward ``W @ cols``, weight gradient ``dY @ cols^T``, column gradient
  ``W^T @ dY``, each in its faster orientation) on ready, contiguous operands, plus one copy
  of the column matrix (im2col writes it at least once). Nothing else: no padding, no
  col2im, no layout changes.

A floor above 1.5x torch means no arrangement of standard operations reaches the 1.5x target
for that row on this machine; the gap is what a fused, cache-blocked kernel saves.
"""

from __future__ import annotations

import os

# As in run.py: idle worker threads sleep, and NumPy's OpenBLAS picks its own kernels.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from xpnet.bench import blas_description

# (channels, size, stride) of the 3x3 rows, padding 1
ROWS = [(32, 28, 1), (32, 28, 2), (64, 14, 1), (64, 14, 2), (128, 7, 1), (128, 7, 2)]
BATCH = 64


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def floor_ms(channels: int, positions: int, repeats: int) -> tuple[float, float]:
    """The three GEMMs of a 3x3 convolution's forward and backward on ready operands, and
    one copy of its column matrix, in milliseconds."""
    rng = np.random.default_rng(1)
    patch = 9 * channels
    kernels = rng.standard_normal((channels, patch), dtype=np.float32)
    cols = rng.standard_normal((patch, positions), dtype=np.float32)
    grad = rng.standard_normal((channels, positions), dtype=np.float32)
    buffer = np.empty_like(cols)
    # Each product in whichever orientation OpenBLAS runs faster (C or its transpose C^T).
    gemms = (
        min(
            median_ms(lambda: kernels @ cols, repeats),
            median_ms(lambda: cols.T @ kernels.T, repeats),
        )
        + min(median_ms(lambda: grad @ cols.T, repeats), median_ms(lambda: cols @ grad.T, repeats))
        + min(
            median_ms(lambda: kernels.T @ grad, repeats),
            median_ms(lambda: grad.T @ kernels, repeats),
        )
    )
    return gemms, median_ms(lambda: np.copyto(buffer, cols), repeats)


def torch_ms(channels: int, size: int, stride: int, repeats: int) -> float:
    """torch's 3x3 convolution (padding 1), forward and both gradients, in milliseconds."""
    import torch

    rng = np.random.default_rng(0)
    out = (size + 2 - 3) // stride + 1
    x = torch.from_numpy(rng.standard_normal((BATCH, channels, size, size), dtype=np.float32))
    w = torch.from_numpy(rng.standard_normal((channels, channels, 3, 3), dtype=np.float32))
    dy = torch.from_numpy(rng.standard_normal((BATCH, channels, out, out), dtype=np.float32))
    x.requires_grad_(True)
    w.requires_grad_(True)

    def both() -> Any:
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=1)
        return torch.autograd.grad(y, [x, w], dy)

    return median_ms(both, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    import torch

    print(f"NumPy's BLAS: {blas_description()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print("| 3x3 conv, batch 64 | torch fwd+bwd ms | GEMMs ms | column copy ms | floor ms "
          "| floor / torch |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for channels, size, stride in ROWS:
        out = (size + 2 - 3) // stride + 1
        theirs = torch_ms(channels, size, stride, args.repeats)
        gemms, copy = floor_ms(channels, BATCH * out * out, args.repeats)
        floor = gemms + copy
        name = f"{channels}->{channels} s{stride} {size}px"
        print(f"| {name} | {theirs:.2f} | {gemms:.2f} | {copy:.2f} | {floor:.2f} "
              f"| {floor / theirs:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
