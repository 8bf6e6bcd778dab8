"""The ``xpnet`` command: list backends, train, evaluate and predict.

Run ``xpnet --help`` (or ``python -m xpnet --help``) for the options; ``xpnet train``
alone trains a small CNN on scikit-learn's bundled 8x8 digits, offline, in seconds.

One module per concern: the arguments (``_parser``), the data (``_data``), each command
(``_train``, ``_saved`` for evaluate and predict, ``_tools`` for bench and backends), and
what they share (``_common``); this module dispatches and turns errors into exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

from .. import backends, data
from ..train import CheckpointError, TrainingDiverged, load_checkpoint
from ._common import DEFAULTS, CommandError, Terminated
from ._parser import _parser
from ._saved import _cmd_evaluate, _cmd_export, _cmd_predict
from ._tools import _cmd_backends, _cmd_bench
from ._train import _cmd_train

__all__ = ["DEFAULTS", "main"]

COMMANDS = {
    "backends": _cmd_backends,
    "bench": _cmd_bench,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "export": _cmd_export,
}


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    """Turn SIGTERM (``kill``) into :class:`Terminated`, so a checkpoint being written is
    abandoned cleanly (its temporary file removed) and the previous one stays intact."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: How long a process of an MPI job that was told to stop (SIGTERM, Ctrl-C) waits for its
#: main thread to stop cleanly before it ends anyway: that thread may be waiting inside an
#: MPI collective, in C, where Python never runs the signal's handler.
STOP_GRACE_SECONDS = 3.0


@contextlib.contextmanager
def _stops_even_inside_mpi(grace: float = STOP_GRACE_SECONDS) -> Iterator[None]:
    """In a process of an MPI job: end the process on SIGTERM or SIGINT even while its main
    thread waits inside MPI (for a process that failed, or stopped, or never came).

    The signal's handler runs as usual when the main thread can run it (the checkpoint
    being written abandoned cleanly). Python also writes each signal's number to a wake-up
    pipe, which a watcher thread reads: if the main thread has not finished ``grace``
    seconds later, the watcher says so and exits the process, and ``mpiexec`` then ends the
    others. Checkpoints are written atomically, so the previous one stays whole.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    finished = threading.Event()
    stopping = {int(signal.SIGTERM): 143, int(signal.SIGINT): 130}

    def watch() -> None:
        while not finished.is_set():
            received = os.read(read_end, 64)
            codes = [stopping[number] for number in received if number in stopping]
            if codes and not finished.wait(grace):
                print(
                    f"\nxpnet: {'terminated' if codes[0] == 143 else 'interrupted'}; this "
                    f"process did not stop within {grace:g} s (it waits inside MPI for the "
                    "others), so it ends now",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(codes[0])

    watcher = threading.Thread(target=watch, name="xpnet-stop-watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        signal.set_wakeup_fd(previous)
        os.write(write_end, b"\0")  # wake the watcher to see it is finished
        watcher.join()
        os.close(read_end)
        os.close(write_end)


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as ``xpnet: warning: ...``, one line each, as the errors are printed."""
    previous = warnings.formatwarning

    def one_line(message: Any, category: Any, filename: Any, lineno: Any, line: Any = None) -> str:
        return f"xpnet: warning: {message}\n"

    warnings.formatwarning = one_line
    try:
        yield
    finally:
        warnings.formatwarning = previous


def _what_was_kept(args: argparse.Namespace) -> str:
    """After an interruption: which checkpoint is on disk, and how to continue from it."""
    save = getattr(args, "save", None)
    if args.command != "train":
        return "nothing was written"
    if save is None:
        return "nothing was saved (train with --save PATH to keep progress)"
    if not os.path.lexists(save):
        return f"nothing was saved to {save} (interrupted before the first epoch ended)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # said once already, when the run began
            epoch = load_checkpoint(save).meta.get("epoch")
    except CheckpointError as exc:
        return f"{save} exists but cannot be loaded: {exc}"
    return f"{save} is intact and holds epoch {epoch}; continue with the same command and --resume"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xpnet`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 1 when training diverged, 2 for a usage or data
        error, 130 after Ctrl-C and 143 after SIGTERM.
    """
    given = list(argv) if argv is not None else sys.argv[1:]
    try:
        status = _main(argv)
    except SystemExit as exc:  # argparse's usage errors
        if exc.code not in (0, None) and "--distributed" in given:
            _end_the_job(exc.code if isinstance(exc.code, int) else 2)
        raise
    if status and "--distributed" in given:
        _end_the_job(status)
    return status


def _end_the_job(status: int) -> None:
    """This process of an MPI job failed: end the whole job now, with this process's
    message already printed, rather than leave the others waiting in a collective."""
    try:
        from mpi4py import MPI
    except ImportError:
        return
    if MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(status)


def _main(argv: Sequence[str] | None) -> int:
    """:func:`main`'s work; its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # for --workers to rerun
    if getattr(args, "resume", False) and args.save is None:
        print(
            "xpnet train: error: --resume needs --save PATH (the checkpoint to continue "
            "from)\nRun 'xpnet train --help' for usage.",
            file=sys.stderr,
        )
        return 2
    if getattr(args, "resume", False) and getattr(args, "overwrite", False):
        print(
            "xpnet train: error: --resume and --overwrite contradict each other: continue "
            "the checkpoint, or replace it",
            file=sys.stderr,
        )
        return 2
    try:
        distributed = getattr(args, "distributed", False)
        with (
            _sigterm_as_exception(),
            _stops_even_inside_mpi() if distributed else contextlib.nullcontext(),
            _one_line_warnings(),
        ):
            return COMMANDS[args.command](args)
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"\nxpnet: {what}; {_what_was_kept(args)}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except TrainingDiverged as exc:
        print(f"xpnet: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:  # a size that asks for more than this machine has
        print(f"xpnet: error: out of memory ({exc or 'an allocation failed'})", file=sys.stderr)
        return 2
    except (
        CommandError,
        CheckpointError,
        data.DatasetError,
        backends.UnknownBackendError,
        backends.BackendUnavailableError,
        ValueError,
        KeyError,
        OSError,
    ) as exc:
        if os.environ.get("XPNET_DEBUG"):
            raise
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"xpnet: error: {message}", file=sys.stderr)
        return 2
