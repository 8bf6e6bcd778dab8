"""``xpnet bench`` and ``xpnet backends``."""

from __future__ import annotations

import argparse
import os
import sys

from .. import backends
from ._common import CommandError, _activate


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib.util
    import subprocess

    _activate(args)  # an unknown backend, or a device it lacks, said here and now
    if args.count:
        from ..bench import count_lenet5_step, format_counts

        print(format_counts(count_lenet5_step(args.batch), args.batch), end="")
        return 0

    if importlib.util.find_spec("torch") is None:
        raise CommandError("bench compares against PyTorch: pip install 'xpnet[torch]'")
    # A fresh process, so the thread-pool settings apply before NumPy and torch start theirs.
    command = [sys.executable, "-m", "xpnet.bench", "--backend", args.backend]
    if args.device is not None:
        command += ["--device", str(args.device)]
    return subprocess.run(command, env=bench_environment(), check=False).returncode


def bench_environment() -> dict[str, str]:
    """The environment benchmarks run in: idle BLAS and OpenMP threads sleep instead of
    spinning, so the two interleaved libraries do not slow each other down (measured: up to
    2x here otherwise; settings already in the environment win), and OpenBLAS picks its
    own kernels for this CPU."""
    environment = dict(os.environ)
    environment.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    environment.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    # Settings for old OpenBLAS builds that hold a current NumPy to its AVX2 kernels.
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        environment.pop(name, None)
    return environment


def _cmd_backends(args: argparse.Namespace) -> int:
    for info in backends.list_backends():
        state = "available" if info.available else "unavailable"
        devices = ", ".join(info.devices) if info.devices else "-"
        line = f"{info.name:18} {state:11} devices: {devices}"
        if info.reason:
            line += f"  - {info.reason}"  # reasons carry their own parentheses
        print(line)
    return 0
