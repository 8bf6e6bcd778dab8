"""A/B: the LeNet-5 + Adam training step of this tree against another commit, in one run.

    python benchmarks/ab.py --base 1eb4cd4                 # NumPy, batches 64 and 256
    python benchmarks/ab.py --base 1eb4cd4 --jax           # and the compiled JAX step
    python benchmarks/ab.py --base 1eb4cd4 --rounds 9 --batches 64

The other commit's ``src`` is exported to a temporary folder (``git archive``). Every
measurement runs in a fresh process, the two versions alternating round by round, so
machine drift hits both alike; each version's figure is the median over the rounds. Also
reported: the peak memory of one NumPy step at the largest batch (tracemalloc), and the
OpenBLAS kernels NumPy ran (the variables that pin old kernels are unset here, as in
run.py).
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

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent


def _worker(kind: str, batch: int, repeats: int, number: int) -> dict[str, Any]:
    """Time one kind of step (in this process, whichever xpnet is on the path)."""
    import tracemalloc

    import numpy as np

    import xpnet
    import xpnet.functional as F
    from xpnet import optim
    from xpnet.models import lenet5

    backend = "jax" if kind == "jax" else "numpy"
    xpnet.set_backend(backend)
    rng = np.random.default_rng(0)
    model = lenet5(rng=rng)
    opt = optim.Adam(model, lr=1e-3)
    x = xpnet.asarray(rng.standard_normal((batch, 1, 28, 28), dtype=np.float32))
    y = xpnet.asarray(rng.integers(0, 10, size=batch), dtype="int64")
    if kind == "jax":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = xpnet.compile_step(model, opt, F.cross_entropy)

        def step() -> Any:
            return compiled(x, y).block_until_ready()

    else:

        def step() -> Any:
            loss, grads = xpnet.value_and_grad(model, F.cross_entropy, x, y)
            opt.step(grads)
            return loss

    for _ in range(3):  # caches, optimizer state, compilation
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            step()
        times.append((time.perf_counter() - start) / number)
    result: dict[str, Any] = {"seconds": statistics.median(times)}
    if kind == "numpy":
        tracemalloc.start()
        step()
        result["peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    try:
        import threadpoolctl

        result["blas"] = "; ".join(
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')}"
            for i in threadpoolctl.threadpool_info()
            if i.get("user_api") == "blas"
        )
    except ImportError:
        result["blas"] = "unknown (pip install threadpoolctl)"
    return result


def _run(src: Path, kind: str, batch: int, repeats: int, number: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, str(HERE), "--worker", kind, str(batch), str(repeats), str(number)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker failed ({src}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the commit to compare with (required)")
    parser.add_argument("--batches", default="64,256")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jax", action="store_true", help="also the compiled JAX step")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, batch, repeats, number = args.worker
        print(json.dumps(_worker(kind, int(batch), int(repeats), int(number))))
        return
    if args.base is None:
        parser.error("--base: give the commit to compare with")
    batches = [int(b) for b in args.batches.split(",")]
    cases = [("numpy", b) for b in batches] + ([("jax", b) for b in batches] if args.jax else [])
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.base, "src"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        sources = {"base": Path(folder) / "src", "this": ROOT / "src"}
        found: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            order = ["base", "this"] if round_ % 2 == 0 else ["this", "base"]
            for kind, batch in cases:
                number = max(2, 512 // batch)
                for version in order:
                    found.setdefault((kind, batch, version), []).append(
                        _run(sources[version], kind, batch, args.repeats, number)
                    )
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    print(f"A/B: this tree (HEAD {head}) against {args.base}; {args.rounds} rounds, alternating")
    print(f"NumPy's BLAS: {found[cases[0] + ('this',)][0]['blas']}")
    print(f"{'step':28} {'base ms':>9} {'this ms':>9} {'this/base':>10}")
    for kind, batch in cases:
        base = statistics.median(r["seconds"] for r in found[(kind, batch, "base")])
        this = statistics.median(r["seconds"] for r in found[(kind, batch, "this")])
        label = f"{'NumPy eager' if kind == 'numpy' else 'JAX compiled'}, batch {batch}"
        print(f"{label:28} {base * 1e3:9.2f} {this * 1e3:9.2f} {this / base:10.3f}")
    largest = max(batches)
    base_peak = found[("numpy", largest, "base")][0]["peak_bytes"] / 2**20
    this_peak = found[("numpy", largest, "this")][0]["peak_bytes"] / 2**20
    print(
        f"peak memory of one NumPy step, batch {largest} (tracemalloc): base {base_peak:.2f} MiB, "
        f"this {this_peak:.2f} MiB, this/base {this_peak / base_peak:.3f}"
    )


if __name__ == "__main__":
    main()
