"""xpnet against its peers on the LeNet-5 + Adam training step: Chainer and PyTorch.

    nox -s bench_peers                 # installs Chainer (needs NumPy < 2) and runs this
    python benchmarks/peers.py [--batches 64,256] [--repeats 7]

Chainer 7.8 is the classic NumPy framework (im2col convolutions on the CPU), the nearest
peer to xpnet's NumPy backend. All three steps run interleaved in one process, on the same
threads, and each is reported as a ratio to PyTorch's. Chainer is skipped, with the reason
printed, where it does not import (it needs NumPy < 2 and setuptools < 70).
"""

from __future__ import annotations

import os

# As in run.py: idle worker threads sleep, and NumPy's OpenBLAS picks its own kernels.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import argparse
import importlib
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from xpnet import functional as F
from xpnet import nn, optim
from xpnet.bench import blas_description, torch_lenet5
from xpnet.models import lenet5


def xpnet_step(batch: int) -> Callable[[], Any]:
    """One LeNet-5 + Adam training step in xpnet on the NumPy backend."""
    rng = np.random.default_rng(0)
    model = lenet5(rng=rng)
    opt = optim.Adam(model, lr=1e-3)
    x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=batch)

    def step() -> Any:
        loss, grads = nn.value_and_grad(model, F.cross_entropy, x, y)
        opt.step(grads)
        return loss

    return step


def torch_step(batch: int) -> Callable[[], Any]:
    """The same step in PyTorch (eager, CPU)."""
    torch: Any = importlib.import_module("torch")  # typed, but loosely for strict mypy

    model = torch_lenet5(torch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch, 1, 28, 28), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, size=batch))

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def chainer_step(batch: int) -> Callable[[], Any]:
    """The same step in Chainer (NumPy, CPU). Raises ImportError where Chainer is missing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Chainer's import warns about its environment
        chainer: Any = importlib.import_module("chainer")  # ships no types
    CF, CL = chainer.functions, chainer.links

    class LeNet5(chainer.Chain):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            with self.init_scope():
                self.conv1 = CL.Convolution2D(1, 6, 5, pad=2)
                self.conv2 = CL.Convolution2D(6, 16, 5)
                self.fc1 = CL.Linear(400, 120)
                self.fc2 = CL.Linear(120, 84)
                self.fc3 = CL.Linear(84, 10)

        def forward(self, x: Any) -> Any:
            h = CF.max_pooling_2d(CF.relu(self.conv1(x)), 2)
            h = CF.max_pooling_2d(CF.relu(self.conv2(h)), 2)
            return self.fc3(CF.relu(self.fc2(CF.relu(self.fc1(h)))))

    model = LeNet5()
    opt = chainer.optimizers.Adam(alpha=1e-3)
    opt.setup(model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, size=batch).astype(np.int32)

    def step() -> Any:
        model.cleargrads()
        loss = CF.softmax_cross_entropy(model(x), y)
        loss.backward()
        opt.update()
        return loss

    return step


def interleaved_ms(steps: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median milliseconds per call of each step, timed in turn within every repeat (so a
    slow spell on a shared machine touches all of them alike)."""
    for step in steps.values():
        step()  # warm-up: allocations, caches, lazy imports
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(3):
                step()
            times[name].append((time.perf_counter() - start) / 3)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64,256")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    import torch

    print(f"NumPy {np.__version__} ({blas_description()}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print("| LeNet-5 + Adam step | framework | ms | ratio to torch |")
    print("|---|---|---:|---:|")
    for batch in (int(b) for b in args.batches.split(",")):
        steps = {"torch": torch_step(batch), "xpnet": xpnet_step(batch)}
        try:
            steps["chainer"] = chainer_step(batch)
        except ImportError as err:
            print(f"(Chainer skipped: {err})")
        ms = interleaved_ms(steps, args.repeats)
        for name, value in ms.items():
            print(f"| batch {batch} | {name} | {value:.2f} | {value / ms['torch']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
