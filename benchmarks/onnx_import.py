"""An imported ONNX graph against the same model built with xpnet's layers, on NumPy.

    python benchmarks/onnx_import.py                    # LeNet-5 and ResNet-20
    python benchmarks/onnx_import.py --repeats 15

For each model this builds the xpnet model, copies its weights into its torch twin (the
same state_dict keys), exports the twin to ONNX (torch's TorchScript exporter, opset 17,
the batch dimension symbolic), imports that file with :func:`xpnet.onnx.load`, and checks
the two xpnet models agree. Then it times, in turns within every repeat, inference (eval
mode) and a training step (value_and_grad and SGD, train mode) of each, and reports the
medians and the imported model's time over the native one's. The exporter folds each batch
norm into the convolution before it, so the imported graph has fewer nodes; the training
step then trains the folded weights.
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
import io
import statistics
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from zoo import interleaved_ms  # this folder is on the path when run as a script

import xpnet
import xpnet.onnx
from xpnet import functional as F
from xpnet import models, optim
from xpnet.bench import blas_description

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# name: (xpnet builder, torch twin's class and arguments, input shape, batch)
MODELS: dict[str, tuple[Callable[[], Any], str, dict[str, Any], tuple[int, ...], int]] = {
    "lenet5": (lambda: models.lenet5(rng=0), "LeNet5", {}, (1, 28, 28), 256),
    "resnet20": (lambda: models.resnet20(rng=0), "CifarResNet", {}, (3, 32, 32), 128),
}


def _torch_twin(name: str) -> Any:
    import torch

    import torch_models

    if name == "lenet5":  # LeNet-5 as xpnet builds it, in torch's layers
        nn = torch.nn
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
            nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )  # fmt: skip
    _, twin, kwargs, _, _ = MODELS[name]
    return getattr(torch_models, twin)(**kwargs)


def imported(name: str, native: Any) -> Any:
    """``native``'s weights through its torch twin and an ONNX file, imported."""
    import torch

    twin = _torch_twin(name)
    state = {
        k: torch.from_numpy(np.array(xpnet.to_numpy(v))) for k, v in native.state_dict().items()
    }
    twin.load_state_dict(state)
    twin.eval()
    shape = MODELS[name][3]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(twin, (torch.zeros((2, *shape)),), buffer, dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})  # fmt: skip
    return xpnet.onnx.load(buffer.getvalue())


def compare(name: str, repeats: int) -> list[str]:
    """Table rows for one model: inference and a training step, native against imported."""
    build, _, _, shape, batch = MODELS[name]
    native = build().eval()
    graph = imported(name, native).eval()
    rng = np.random.default_rng(0)
    x = xpnet.asarray(rng.standard_normal((batch, *shape)).astype(np.float32))
    y = xpnet.asarray(rng.integers(0, 10, batch), dtype="int64")
    got, want = xpnet.to_numpy(graph(x)), xpnet.to_numpy(native(x))
    assert np.allclose(got, want, rtol=1e-3, atol=1e-4), float(np.max(np.abs(got - want)))
    results = {
        "inference": interleaved_ms(
            {"native": lambda: native(x), "imported": lambda: graph(x)}, repeats
        )
    }
    native.train(), graph.train()
    steps = {}
    for label, model in (("native", native), ("imported", graph)):
        opt = optim.SGD(model, lr=1e-6)  # tiny: the folded graph has no batch norm to tame it

        def step(model: Any = model, opt: Any = opt) -> None:
            _, grads = xpnet.value_and_grad(model, F.cross_entropy, x, y)
            opt.step(grads)

        steps[label] = step
    results["training step"] = interleaved_ms(steps, repeats)
    rows = []
    for what, times in results.items():
        a, b = (statistics.median(times[k]) for k in ("native", "imported"))
        rows.append(f"| {name} | {batch} | {len(graph.graph.nodes)} | {what} | {a:.1f} | "
                    f"{b:.1f} | {b / a:.2f} |")  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,resnet20")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    print(f"NumPy {np.__version__} ({blas_description()})")
    print("| model | batch | nodes | what | native ms | imported ms | imported / native |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for name in args.models.split(","):
        for row in compare(name, args.repeats):
            print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
