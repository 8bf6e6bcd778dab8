"""Scaling out on this machine: a LeNet-5 step on 1 against 2 MPI processes, and Dask
batch inference against one process, each beside PyTorch measured in the same run.

    python benchmarks/scale.py [--steps 30] [--backend numpy|torch|cupy] [--device cuda]

Needs mpi4py and an MPI (``pip install mpi4py mpich``) and Dask (``pip install 'dask[array]'
distributed``). Every figure is a median of repeats; ratios are against the same work in
one process (and torch's one-process step, for scale).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.pop("OPENBLAS_CORETYPE", None)
os.environ.pop("OPENBLAS_L2_SIZE", None)

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.bench import torch_lenet5

JOB = """
import json, statistics, sys, time
import numpy as np
import xpnet
from xpnet import distributed, nn, optim
from xpnet.models import lenet5
from xpnet.nn.grad import loss_output_and_grads
import xpnet.functional as F
comm = distributed.init()
steps, batch = int(sys.argv[1]), int(sys.argv[2])
name = xpnet.get_backend().name
xpnet.set_backend(name, comm.device_for(name, sys.argv[3] if len(sys.argv) > 3 else None))
rng = np.random.default_rng(0)
model = lenet5(rng=np.random.default_rng(1))
opt = optim.Adam(model, lr=1e-3)
step = distributed.DistributedStep(model, opt, F.cross_entropy, comm)
x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
y = rng.integers(0, 10, batch)
share = np.array_split(np.arange(batch), comm.size)[comm.rank]
xs, ys = xpnet.asarray(x[share]), xpnet.asarray(y[share])
for _ in range(3):
    step.run(xs, ys)
times = []
for _ in range(steps):
    comm.barrier()
    start = time.perf_counter()
    step.run(xs, ys)
    times.append(time.perf_counter() - start)
# The allreduce alone (it ends by reading three numbers back, so the device is done).
loss, output, grads = loss_output_and_grads(model, F.cross_entropy, xs, ys)
sums = []
for _ in range(steps):
    comm.barrier()
    start = time.perf_counter()
    distributed.allreduce_mean(grads, comm, count=len(share), loss=loss)
    sums.append(time.perf_counter() - start)
if comm.is_root:
    print(json.dumps({"median_ms": statistics.median(times) * 1e3,
                      "allreduce_ms": statistics.median(sums) * 1e3, "path": comm.last_path,
                      "device": str(xpnet.get_backend().device)}))
"""


def mpi_step_ms(
    processes: int, steps: int, batch: int, threads: int, backend: str, device: str | None
) -> dict[str, Any]:
    """Median milliseconds of one data-parallel LeNet-5 step at global ``batch``, and of
    its gradient allreduce alone, with how the allreduce moved its buffer."""
    from xpnet.cli._workers import find_mpiexec

    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install mpi4py mpich")
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "job.py"
        script.write_text(JOB)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": str(threads), "XPNET_BACKEND": backend}  # fmt: skip
        result = subprocess.run(
            [mpiexec, "-n", str(processes), sys.executable, "-m", "mpi4py", str(script),
             str(steps), str(batch), *([device] if device else [])],
            capture_output=True, text=True, env=env, check=True, timeout=600,
        )  # fmt: skip
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def torch_step_ms(batch: int, repeats: int) -> float:
    import importlib

    torch: Any = importlib.import_module("torch")
    model = torch_lenet5(torch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch, 1, 28, 28), dtype=np.float32))
    y = torch.from_numpy(rng.integers(0, 10, batch))
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def dask_images_per_second(images: int, chunk: int) -> tuple[float, float]:
    """Dask predict on a 2-process LocalCluster against the same model in this process."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from xpnet import distributed
    from xpnet.models import lenet5

    model = lenet5(rng=np.random.default_rng(1)).eval()
    host = np.random.default_rng(0).integers(0, 255, (images, 1, 28, 28)).astype(np.uint8)
    start = time.perf_counter()
    for first in range(0, images, chunk):
        x = host[first : first + chunk].astype(np.float32) / 255.0
        model(x)
    here = images / (time.perf_counter() - start)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):  # fmt: skip
        lazy = distributed.predict(model, da.from_array(host, chunks=(chunk, 1, 28, 28)))
        lazy.compute()  # warm: the model reaches the workers
        start = time.perf_counter()
        lazy.compute()
        there = images / (time.perf_counter() - start)
    return here, there


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--backend", default="numpy", help="xpnet backend of the MPI jobs")
    parser.add_argument("--device", default=None, help="e.g. cuda: one GPU per process")
    parser.add_argument("--processes", type=int, default=2, help="the larger job's size")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask rows")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    jobs = {n: mpi_step_ms(n, args.steps, args.batch, max(1, cores // n), args.backend,
                           args.device) for n in (1, args.processes)}  # fmt: skip
    theirs = torch_step_ms(args.batch, args.steps)
    print(f"LeNet-5 + Adam step, global batch {args.batch}, {cores} cores, backend "
          f"{args.backend} ({jobs[1]['device']}); torch 1 process on the CPU:")  # fmt: skip
    print("| processes | xpnet ms | speed-up | allreduce ms | allreduce path | torch ms |")
    print("|---:|---:|---:|---:|---|---:|")
    for n, job in jobs.items():
        print(f"| {n} | {job['median_ms']:.2f} | {jobs[1]['median_ms'] / job['median_ms']:.2f} "
              f"| {job['allreduce_ms']:.3f} | {job['path']} | "
              f"{f'{theirs:.2f}' if n == 1 else ''} |")  # fmt: skip
    if args.no_dask:
        return 0
    here, there = dask_images_per_second(8192, 512)
    print("\nLeNet-5 inference, 8,192 images in chunks of 512:")
    print(f"one process {here:,.0f} images/s; Dask, 2 worker processes {there:,.0f} images/s "
          f"({there / here:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
