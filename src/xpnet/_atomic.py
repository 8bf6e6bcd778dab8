"""Files written whole or not at all: a temporary file beside the target, renamed over it.

Checkpoints, downloads and figures all go through :func:`replacing`. A signal (Ctrl-C,
SIGTERM turned into an exception by the CLI) may arrive at any bytecode; the moments where
an exception would strand the temporary file (just after it is created, while it is renamed
or removed) run with those signals held back and delivered right after.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO

from ._paths import path_kind, resolved

try:
    import fcntl

    HAVE_FLOCK = True
except ImportError:  # Windows
    HAVE_FLOCK = False

__all__ = ["HAVE_FLOCK", "NotARegularFileError", "replacing", "signals_held"]

_HELD_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM inside the block and deliver them when it ends.

    Python runs signal handlers on the main thread between bytecodes, so a handler that
    raises (``KeyboardInterrupt``, the CLI's ``Terminated``) can cut a short critical
    section in two. Inside this block their handlers only record the signal; on leaving it
    the previous handlers come back and each recorded signal is raised again, once. Off the
    main thread (where handlers cannot be changed and never run) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def record(signum: int, frame: FrameType | None) -> None:
        if signum not in received:
            received.append(signum)

    previous: dict[int, Callable[[int, FrameType | None], object] | int] = {}
    try:
        for signum in _HELD_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is None:  # installed outside Python: cannot be put back, leave it
                continue
            previous[signum] = handler
            signal.signal(signum, record)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received:
            signal.raise_signal(signum)


class NotARegularFileError(OSError):
    """A path to write is something other than a regular file (a FIFO, a device, a folder)."""


@contextlib.contextmanager
def replacing(target: str | os.PathLike[str], *, lock: bool = False) -> Iterator[IO[bytes]]:
    """Write ``target`` through a binary stream, whole or not at all.

    The stream writes a temporary file ``.NAME.XXXXXXXX.tmp`` beside ``target`` (so the
    rename stays on one file system). When the block ends normally the file is flushed to
    disk, given the mode a plain ``open`` would give it, and renamed over ``target``; when it
    raises (a signal included) the temporary file is removed and ``target`` is untouched.

    Parameters
    ----------
    target : path-like
        The file to write; its folder is created if missing.
    lock : bool, default False
        Hold an exclusive ``flock`` on the temporary file while writing, so that whoever
        removes abandoned temporaries (after a SIGKILL) skips one being written.

    Yields
    ------
    IO[bytes]
        The stream to write to.
    """
    final = resolved(Path(target))  # written through a link, never replacing the link
    try:
        mode = os.stat(final).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        # A FIFO or a device (/dev/null, as root) would be replaced by a regular file.
        raise NotARegularFileError(
            f"{final}: is {path_kind(mode)}; xpnet writes regular files only (or new ones)"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary: Path | None = None
    stream: IO[bytes] | None = None
    committed = False
    try:
        with signals_held():
            handle, name = tempfile.mkstemp(
                prefix=f".{sidecar_stem(final.name)}.", suffix=".tmp", dir=final.parent
            )
            temporary = Path(name)
            stream = os.fdopen(handle, "wb")
        if lock and HAVE_FLOCK:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
        yield stream
        stream.flush()
        os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(temporary, 0o666 & ~_umask())
        with signals_held():
            stream.close()
            os.replace(temporary, final)
            committed = True
    except BaseException as exc:
        with signals_held():
            if stream is not None:
                with contextlib.suppress(OSError):  # its flush fails again on a full disk
                    stream.close()
            if temporary is not None and not committed:
                temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            # A write's error (a full disk, a quota) names no file: name the one we wrote.
            raise OSError(exc.errno, exc.strerror, str(final)) from exc
        raise
    _fsync_directory(final.parent)


def sidecar_stem(name: str) -> str:
    """The part of a file's name its sidecars (``.NAME.lock``, ``.NAME.XXXXXXXX.tmp``) are
    named with: the name itself, or for a name near the system's 255-byte limit its start
    and a digest of the whole, so that the sidecars' names fit too."""
    if len(os.fsencode(name)) <= 200:
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    return f"{os.fsencode(name)[:160].decode(errors='ignore')}~{digest}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
