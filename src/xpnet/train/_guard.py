"""What keeps a checkpoint path safe across runs: a lock held for the whole run, a check
that the path can be written before any training, and the removal of temporary files that
a killed writer left behind.

The lock is an advisory ``flock`` on a sidecar file ``.NAME.lock`` next to the checkpoint
(POSIX); the kernel releases it when its process dies, however it dies, so a lock is never
stale. The sidecar records who holds it, for the message another run prints.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO

try:  # POSIX
    import fcntl

    HAVE_FLOCK = True
except ImportError:  # pragma: no cover - Windows: no advisory locks, see CheckpointLock
    HAVE_FLOCK = False

from .._atomic import sidecar_stem
from .._paths import path_kind, resolved
from .checkpoint import CheckpointError

__all__ = [
    "CheckpointLock",
    "check_writable",
    "held_checkpoint",
    "lock_path",
    "remove_stale_temporaries",
    "resolved",
]


def lock_path(path: Path) -> Path:
    """The sidecar file whose lock guards ``path``."""
    return path.with_name(f".{sidecar_stem(path.name)}.lock")


def check_writable(path: Path) -> None:
    """Raise :class:`CheckpointError` now, before any training, if a checkpoint can never
    be written to ``path``: it is a folder, a parent is a file, or the folder that would
    hold it is not writable."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None  # absent (or a link to an absent file): it will be created
    except OSError as exc:  # a name too long for the file system, a loop of links...
        raise CheckpointError(f"{path}: cannot be used as a checkpoint ({exc.strerror})") from None
    if mode is not None and stat.S_ISDIR(mode):
        example = path / "model.safetensors"
        raise CheckpointError(f"{path}: is a folder; give a file name, e.g. {example}")
    if mode is not None and not stat.S_ISREG(mode):
        raise CheckpointError(
            f"{path}: is {path_kind(mode)}, not a checkpoint file; a checkpoint is written "
            "to a regular file (or a new one)"
        )
    existing = path.parent
    while not existing.exists():  # the nearest existing ancestor: where mkdir would start
        existing = existing.parent
    if not existing.is_dir():
        raise CheckpointError(f"{path}: cannot be created, because {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CheckpointError(f"{path}: cannot be written, {existing} is not writable")


class CheckpointLock:
    """Hold ``path`` for one run: a second run (any process) that asks for the same path
    fails at once with :class:`CheckpointError` naming the process that holds it.

    Use as a context manager; the sidecar file is removed on release.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sidecar = lock_path(path)
        self._stream: IO[str] | None = None

    def __enter__(self) -> CheckpointLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not HAVE_FLOCK:  # pragma: no cover - no advisory locks: run unguarded
            return
        while True:
            try:
                stream = open(self.sidecar, "a+", encoding="utf-8")  # noqa: SIM115 - held open
            except OSError as exc:
                raise CheckpointError(
                    f"{self.path}: cannot create its lock file {self.sidecar} "
                    f"({exc.strerror}); " + _remedy(exc)
                ) from None
            try:
                fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                stream.seek(0)
                holder = stream.read().strip() or "another process"
                stream.close()
                raise CheckpointError(
                    f"{self.path}: in use by another run ({holder}); wait for it to finish, "
                    "or save to another path"
                ) from None
            # The previous holder may have removed the sidecar between our open and our
            # lock: then we locked a file nobody else will see. Start again.
            try:
                same = os.stat(self.sidecar).st_ino == os.fstat(stream.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            stream.close()
        self._stream = stream
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""
        try:
            stream.seek(0)
            stream.truncate()
            stream.write(
                f"pid {os.getpid()} on {socket.gethostname()}, since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}" + (f": {command}" if command else "")
            )
            stream.flush()
        except OSError as exc:  # a full disk or a quota: let go of the lock, named
            self.release()
            raise CheckpointError(
                f"{self.path}: cannot write its lock file {self.sidecar} ({exc.strerror}); "
                + _remedy(exc)
            ) from None

    def release(self) -> None:
        if self._stream is None:
            return
        try:
            self.sidecar.unlink(missing_ok=True)  # while still locked: see acquire
        finally:
            with contextlib.suppress(OSError):  # a flush failing again (a full disk)
                self._stream.close()
            self._stream = None


def _remedy(exc: OSError) -> str:
    full = exc.errno in {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
    return "free some space, or save elsewhere" if full else "save elsewhere"


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporary files ``.NAME.*.tmp`` that an interrupted write of ``path``
    left behind (a SIGKILL gives no chance to clean up). A writer holds a lock on its
    temporary file while it writes, so only abandoned ones are removed. Returns them."""
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(sidecar_stem(path.name))}.*.tmp"):
        try:
            with open(candidate, "rb") as stream:
                if HAVE_FLOCK:
                    fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                candidate.unlink()
                removed.append(candidate)
        except (BlockingIOError, FileNotFoundError):
            continue  # being written right now, or already gone
        except OSError:
            continue  # not ours to remove (permissions): leave it
    return removed


@contextlib.contextmanager
def held_checkpoint(path: Path, resume: bool, overwrite: bool) -> Iterator[None]:
    """Check ``path`` can be written, hold it for the run, refuse to replace an earlier
    run's checkpoint unasked, and remove temporaries a killed run left beside it."""
    check_writable(path)
    with CheckpointLock(path):
        if path.exists() and not (resume or overwrite):
            raise CheckpointError(
                f"{path}: exists; pass overwrite=True (--overwrite) to replace it with a new "
                "run, or resume=True (--resume) to continue it"
            )
        remove_stale_temporaries(path)
        yield
