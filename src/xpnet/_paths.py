"""What a path is, in words, for the messages that refuse it (a FIFO, a device, a folder):
a file xpnet reads or writes must be a regular file, and a path that is something else is
named as what it is, never as "not found"."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["file_problem", "kind_of", "path_kind", "resolved", "same_file"]

_KINDS = {
    stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket",
}  # fmt: skip


def path_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, in words (``"a FIFO (named pipe)"``)."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def file_problem(path: Path, expected: str = "a file") -> str | None:
    """Why ``path`` cannot be read as ``expected`` (``"file not found"``, ``"is a FIFO
    (named pipe), expected a file"``), or ``None`` for a regular file."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "file not found"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    return f"is {path_kind(mode)}, expected {expected}"


def same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file: through links, hard links, or two spellings of one
    path (a file that does not exist yet is the same only as its own path)."""
    try:
        return os.path.samefile(first, second)
    except OSError:  # one is absent (or unreadable): compare where the paths lead
        return os.path.realpath(first) == os.path.realpath(second)


def kind_of(path: str | os.PathLike[str]) -> str:
    """What an existing ``path`` is, in words: ``"a file"`` for a regular file, else as
    :func:`path_kind` says (``"a FIFO (named pipe)"``)."""
    mode = os.stat(path).st_mode
    return "a file" if stat.S_ISREG(mode) else path_kind(mode)


def resolved(path: Path) -> Path:
    """``path`` with a symbolic link followed to the file it names: a file is written
    through a link (not replacing the link), and two runs reaching one checkpoint by
    different links hold the same lock."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path
