"""Library-wide settings.

``workspace_bytes`` bounds the temporary im2col buffer of a convolution: larger batches are
processed in chunks that fit, with the same results. Change it for the whole process with
:func:`set_workspace_bytes`, or for a block with :func:`workspace`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["DEFAULT_WORKSPACE_BYTES", "get_workspace_bytes", "set_workspace_bytes", "workspace"]

DEFAULT_WORKSPACE_BYTES = 256 * 2**20

_global_workspace = DEFAULT_WORKSPACE_BYTES
_workspace: ContextVar[int | None] = ContextVar("xpnet_workspace", default=None)


def _check(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"workspace bytes: expected a positive int, got {n!r}")
    return n


def get_workspace_bytes() -> int:
    """The im2col workspace budget in bytes now in force."""
    local = _workspace.get()
    return _global_workspace if local is None else local


def set_workspace_bytes(n: int) -> None:
    """Set the process-wide im2col workspace budget (default 256 MiB)."""
    global _global_workspace
    _global_workspace = _check(n)


@contextlib.contextmanager
def workspace(n: int) -> Iterator[int]:
    """Use a different workspace budget inside a ``with`` block (thread- and task-local)."""
    token = _workspace.set(_check(n))
    try:
        yield n
    finally:
        _workspace.reset(token)
