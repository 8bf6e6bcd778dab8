"""How close can an im2col convolution get to PyTorch here? Its floor against torch's time.

    python benchmarks/conv_floor.py [--repeats 9]            # the 3x3 rows
    python benchmarks/conv_floor.py --model resnet20         # a whole training step

For each 3x3 row of the benchmark table (batch 64, float32) this times, in one process:

* torch's convolution forward + backward (input and weight gradients);
* xpnet's, on NumPy (the same three products through ``F.vjp``);
* the floor of any convolution built from standard array operations and a GEMM: the three
  GEMMs (forward ``W @ cols``, weight gradient ``dY @ cols^T``, column gradient
  ``W^T @ dY``, each in its faster orientation) on ready, contiguous operands, plus one copy
  of the column matrix (im2col writes it at least once). Nothing else: no padding, no
  col2im, no layout changes.

A floor above 1.5x torch means no arrangement of standard operations reaches the 1.5x target
for that row on this machine; the gap is what a fused, cache-blocked kernel saves. xpnet's
time over the floor is what its own layout work costs.

``--model resnet20`` sums the floors of every convolution of a ResNet-20 training step at
batch 128 (the stem's without its input gradient, which nobody asks for), adds one copy of
each batch-norm layer's activation forward and one backward (the least any normalisation,
ReLU and residual add can touch: a single pass each way), and sets the sum against torch's
and xpnet's whole steps (``benchmarks/zoo.py``'s), timed in turn.
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

from xpnet.bench import blas_description, compiled_kernels_description

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


def floor_ms(
    channels: int,
    positions: int,
    repeats: int,
    out_channels: int | None = None,
    input_grad: bool = True,
) -> tuple[float, float]:
    """The three GEMMs of a 3x3 convolution's forward and backward on ready operands (two
    without ``input_grad``), and one copy of its column matrix, in milliseconds."""
    rng = np.random.default_rng(1)
    patch, out = 9 * channels, out_channels or channels
    kernels = rng.standard_normal((out, patch), dtype=np.float32)
    cols = rng.standard_normal((patch, positions), dtype=np.float32)
    grad = rng.standard_normal((out, positions), dtype=np.float32)
    buffer = np.empty_like(cols)
    # Each product in whichever orientation OpenBLAS runs faster (C or its transpose C^T).
    gemms = min(
        median_ms(lambda: kernels @ cols, repeats),
        median_ms(lambda: cols.T @ kernels.T, repeats),
    ) + min(median_ms(lambda: grad @ cols.T, repeats), median_ms(lambda: cols @ grad.T, repeats))
    if input_grad:
        gemms += min(
            median_ms(lambda: kernels.T @ grad, repeats),
            median_ms(lambda: grad.T @ kernels, repeats),
        )
    return gemms, median_ms(lambda: np.copyto(buffer, cols), repeats)


def operands(channels: int, size: int, stride: int) -> tuple[np.ndarray, ...]:
    """The input, weight and output cotangent of a 3x3 row (padding 1), the same for both
    libraries."""
    rng = np.random.default_rng(0)
    out = (size + 2 - 3) // stride + 1
    shapes = (
        (BATCH, channels, size, size),
        (channels, channels, 3, 3),
        (BATCH, channels, out, out),
    )
    return tuple(rng.standard_normal(shape, dtype=np.float32) for shape in shapes)


def xpnet_ms(channels: int, size: int, stride: int, repeats: int) -> float:
    """xpnet's 3x3 convolution (padding 1) on NumPy, forward and both gradients, in ms."""
    import xpnet
    from xpnet import functional as F

    x, w, dy = (xpnet.asarray(a) for a in operands(channels, size, stride))

    def both() -> Any:
        _, pullback = F.vjp(F.conv2d, x, w, None, stride, 1)
        return pullback(dy)[:2]

    return median_ms(both, repeats)


def torch_ms(channels: int, size: int, stride: int, repeats: int) -> float:
    """torch's 3x3 convolution (padding 1), forward and both gradients, in milliseconds."""
    import torch

    x, w, dy = (torch.from_numpy(a) for a in operands(channels, size, stride))
    x.requires_grad_(True)
    w.requires_grad_(True)

    def both() -> Any:
        y = torch.nn.functional.conv2d(x, w, stride=stride, padding=1)
        return torch.autograd.grad(y, [x, w], dy)

    return median_ms(both, repeats)


def resnet20_convs() -> list[tuple[int, int, int, int]]:
    """``(in_channels, out_channels, output positions per image, stride)`` of every
    convolution of xpnet's ResNet-20, read off one forward pass of the model itself."""
    import xpnet
    from xpnet import models, nn

    seen: list[tuple[int, int, int, int]] = []
    forward = nn.Conv2d.forward

    def spy(self: Any, x: Any) -> Any:
        y = forward(self, x)
        shape = tuple(int(s) for s in y.shape)
        seen.append((int(x.shape[1]), shape[1], shape[2] * shape[3], self.stride[0]))
        return y

    nn.Conv2d.forward = spy  # type: ignore[method-assign]
    try:
        models.resnet20(rng=0)(xpnet.asarray(np.zeros((1, 3, 32, 32), dtype=np.float32)))
    finally:
        nn.Conv2d.forward = forward  # type: ignore[method-assign]
    return seen


def model_floor(repeats: int) -> None:
    """The ResNet-20 step's floor (see the module docstring) against torch's and xpnet's."""
    import statistics

    import zoo

    batch = 128
    convs = resnet20_convs()
    gemm_total = copy_total = 0.0
    for index, (channels, out, positions, _) in enumerate(convs):
        # The stem's input is the batch: no gradient is asked of it.
        gemms, copy = floor_ms(channels, batch * positions, repeats, out, input_grad=index > 0)
        gemm_total, copy_total = gemm_total + gemms, copy_total + copy
    # One pass over each normalised activation forward and one backward (a copy each).
    passes = 0.0
    for _, out, positions, _ in convs:
        activation = np.ones((batch, out * positions), dtype=np.float32)
        target = np.empty_like(activation)
        passes += 2 * median_ms(lambda a=activation, t=target: np.copyto(t, a), repeats)
    steps = {"torch": zoo.torch_step("resnet20", batch), "xpnet": zoo.xpnet_step("resnet20", batch)}
    times = zoo.interleaved_ms(steps, repeats)
    theirs, ours = (statistics.median(times[k]) for k in ("torch", "xpnet"))
    floor = gemm_total + copy_total + passes
    print(f"| ResNet-20 step, batch {batch} | ms | / torch |")
    print("|---|---:|---:|")
    print(f"| torch (eager, oneDNN) | {theirs:.1f} | 1.00 |")
    print(f"| xpnet on NumPy | {ours:.1f} | {ours / theirs:.2f} |")
    print(f"| floor: {len(convs)} convs' GEMMs | {gemm_total:.1f} | {gemm_total / theirs:.2f} |")
    print(f"| floor: + one column copy each | {gemm_total + copy_total:.1f} "
          f"| {(gemm_total + copy_total) / theirs:.2f} |")  # fmt: skip
    print(f"| floor: + one pass per norm layer each way | {floor:.1f} | {floor / theirs:.2f} |")
    print(f"\nxpnet / floor: {ours / floor:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--model", choices=["resnet20"], help="a whole training step's floor")
    args = parser.parse_args(argv)
    import torch

    print(f"NumPy's BLAS: {blas_description()}; compiled kernels: "
          f"{compiled_kernels_description()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    if args.model:
        model_floor(args.repeats)
        return 0
    print("| 3x3 conv, batch 64 | torch fwd+bwd ms | xpnet ms | GEMMs ms | column copy ms "
          "| floor ms | floor / torch | xpnet / floor | xpnet / torch |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for channels, size, stride in ROWS:
        out = (size + 2 - 3) // stride + 1
        theirs = torch_ms(channels, size, stride, args.repeats)
        ours = xpnet_ms(channels, size, stride, args.repeats)
        gemms, copy = floor_ms(channels, BATCH * out * out, args.repeats)
        floor = gemms + copy
        name = f"{channels}->{channels} s{stride} {size}px"
        print(f"| {name} | {theirs:.2f} | {ours:.2f} | {gemms:.2f} | {copy:.2f} | {floor:.2f} "
              f"| {floor / theirs:.2f} | {ours / floor:.2f} | {ours / theirs:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
