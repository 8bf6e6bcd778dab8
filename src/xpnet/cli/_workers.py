"""``xpnet train --workers N``: the same command, rerun as an MPI job of N processes."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ._common import CommandError


def find_mpiexec() -> str | None:
    """``mpiexec`` on the PATH, else beside this Python (``pip install mpich`` puts it in
    the environment's ``bin``)."""
    found = shutil.which("mpiexec")
    if found is not None:
        return found
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def without_workers(argv: list[str]) -> list[str]:
    """The arguments with ``--workers N`` (or ``--workers=N``) taken out."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        kept.append(arg)
    return kept


def available_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_workers(args: argparse.Namespace) -> int:
    """Rerun this ``train`` command as ``args.workers`` MPI processes; their exit status.

    ``python -m mpi4py`` makes an exception on any rank abort the whole job (instead of
    leaving the others waiting in a collective forever).
    """
    cores = available_cores()
    if args.workers > cores:
        # Every process starts here, and MPI's waits spin: more processes than cores share
        # them and wait on each other (Open MPI refuses as much by default).
        raise CommandError(
            f"--workers: {args.workers} processes, but this machine has {cores} "
            f"core{'s' if cores != 1 else ''} for them; give at most {cores}, or start a job "
            "over several machines yourself: mpiexec -n N python -m mpi4py -m xpnet train "
            "--distributed ..."
        )
    if args.batch_size is not None and args.workers > args.batch_size:
        raise CommandError(
            f"--workers: {args.workers} processes for batches of {args.batch_size} "
            "(--batch-size is the global batch, shared out): some processes would never "
            "have an example; give at most as many workers as the batch has images"
        )
    try:
        import mpi4py  # noqa: F401 - only its presence
    except ImportError:
        raise CommandError(
            "--workers: needs mpi4py and an MPI (pip install mpi4py mpich)"
        ) from None
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise CommandError(
            "--workers: no mpiexec found (pip install mpich gives one); or start the job "
            "yourself: mpiexec -n N python -m mpi4py -m xpnet train --distributed ..."
        )
    launcher = [mpiexec, "-n", str(args.workers)]
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, check=False)
    open_mpi = "Open MPI" in version.stdout + version.stderr
    if open_mpi and hasattr(os, "geteuid") and os.geteuid() == 0:
        launcher.append("--allow-run-as-root")  # Open MPI refuses root otherwise
    command = [*launcher, sys.executable, "-m", "mpi4py", "-m", "xpnet"]
    command += [*without_workers(args.argv), "--distributed"]
    print(f"running {args.workers} processes: {' '.join(command)}", flush=True)
    return subprocess.run(command, check=False).returncode
