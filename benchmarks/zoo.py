"""The model zoo's training steps against the same models in PyTorch, on the CPU.

    python benchmarks/zoo.py                     # ResNet-20 (CIFAR) at batch 128, and more
    python benchmarks/zoo.py --models resnet20 --batches 32,128 --repeats 5

Each step is a forward pass, cross-entropy (per-pixel for the U-Net), the backward pass and
an SGD-with-momentum update, on random data of the model's input size. xpnet runs on NumPy;
torch eager on the same threads; they alternate within every repeat, and the report gives
the median time of each and xpnet's over torch's. The torch models are the twins that
tests/test_models.py checks xpnet's against (same layers, same state_dict keys), so the two
sides run the same arithmetic. Counts (launches, syncs) are not timed here: they are held
by tests/test_budgets.py.
"""

from __future__ import annotations

import os

# As in run.py: idle worker threads sleep, and NumPy's OpenBLAS picks its own kernels (the
# machine's OPENBLAS_CORETYPE/L2 settings are for tests and CI only).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import xpnet
from xpnet import functional as F
from xpnet import models, optim
from xpnet.bench import blas_description

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# name: (xpnet builder, torch twin's class name and arguments, input shape, segmentation)
MODELS: dict[str, tuple[Callable[[], Any], str, dict[str, Any], tuple[int, int, int], bool]] = {
    "resnet20": (lambda: models.resnet20(rng=0), "CifarResNet", {}, (3, 32, 32), False),
    "mobilenet_v2": (
        lambda: models.mobilenet_v2(num_classes=10, rng=0),
        "MobileNetV2",
        {"num_classes": 10},
        (3, 32, 32),
        False,
    ),
    "unet": (
        lambda: models.unet(3, 2, rng=0),
        "UNet",
        {"in_channels": 3, "num_classes": 2, "b": 16, "bilinear": False},
        (3, 64, 64),
        True,
    ),
}


def _data(shape: tuple[int, ...], batch: int, segmentation: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, *shape), dtype=np.float32)
    labels = (batch, *shape[1:]) if segmentation else (batch,)
    return x, rng.integers(0, 2 if segmentation else 10, size=labels)


def xpnet_step(name: str, batch: int) -> Callable[[], Any]:
    build, _, _, shape, segmentation = MODELS[name]
    model = build()
    opt = optim.SGD(model, lr=0.01, momentum=0.9)
    x, y = _data(shape, batch, segmentation)

    def step() -> Any:
        loss, grads = xpnet.value_and_grad(model, F.cross_entropy, x, y)
        opt.step(grads)
        return loss

    return step


def torch_step(name: str, batch: int) -> Callable[[], Any]:
    import torch

    import torch_models

    _, twin, kwargs, shape, segmentation = MODELS[name]
    torch.manual_seed(0)
    model = getattr(torch_models, twin)(**kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = (torch.from_numpy(a) for a in _data(shape, batch, segmentation))

    def step() -> Any:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def interleaved_ms(steps: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Milliseconds of each step per repeat, the steps taking turns within every repeat."""
    for step in steps.values():
        step()  # warm-up: allocations, cached index tables, lazy imports
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,mobilenet_v2,unet")
    parser.add_argument("--batches", default="128", help="for the classifiers (U-Net: /16)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    import torch

    print(f"NumPy {np.__version__} ({blas_description()}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print("| training step | batch | torch ms | xpnet ms | ratio | spread |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            size = max(1, batch // 16) if MODELS[name][4] else batch
            times = interleaved_ms(
                {"torch": torch_step(name, size), "xpnet": xpnet_step(name, size)}, args.repeats
            )
            torch_ms, xpnet_ms = (statistics.median(times[k]) for k in ("torch", "xpnet"))
            # The widest max/min over the repeats of either side: a busy machine shows here.
            spread = max(max(t) / min(t) for t in times.values())
            flag = "  (noisy: rerun)" if spread > 1.5 else ""
            print(f"| {name} | {size} | {torch_ms:.1f} | {xpnet_ms:.1f} | "
                  f"{xpnet_ms / torch_ms:.2f} | {spread:.2f}{flag} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
