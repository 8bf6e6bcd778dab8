"""What a path is, in words, for the messages that refuse it (a FIFO, a device, a folder):
a file xpnet reads or writes must be a regular file, and a path that is something else is
named as what it is, never as "not found"."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["file_problem", "path_kind"]

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
