"""Seeded host randomness.

The Array API standard has no random module, so every random draw in xpnet (dropout
masks, and later initialisation and shuffling) comes from one NumPy generator on the host
and is then moved to the array's device. One seed therefore gives the same numbers on
every backend.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol

import numpy as np

__all__ = [
    "Generator",
    "MaskSource",
    "draw_keep_mask",
    "get_rng",
    "keep_mask",
    "mask_source",
    "resolve_rng",
    "seed",
]

Generator = np.random.Generator

_lock = threading.Lock()
_rng: np.random.Generator = np.random.default_rng()


def seed(n: int) -> None:
    """Reseed xpnet's global host generator.

    Parameters
    ----------
    n : int
        A non-negative seed.
    """
    global _rng
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"seed: expected a non-negative int, got {n!r}")
    with _lock:
        _rng = np.random.default_rng(int(n))


def get_rng() -> np.random.Generator:
    """Return xpnet's global host generator (see :func:`seed`)."""
    return _rng


def resolve_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Turn an ``rng`` argument into a generator.

    Parameters
    ----------
    rng : numpy.random.Generator, int or None
        A generator is used as is, an int seeds a new one, ``None`` gives the global one.
    """
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int | np.integer) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng: expected a numpy.random.Generator, a non-negative int or None, got {rng!r}"
    )


class MaskSource(Protocol):
    """Where :func:`keep_mask` takes its masks while a step is being compiled."""

    def keep_mask(self, rng: Any, shape: tuple[int, ...], p: float) -> Any:
        """The mask for a draw of ``shape`` from ``rng`` kept with probability ``1 - p``."""
        ...


_mask_source: ContextVar[MaskSource | None] = ContextVar("xpnet_mask_source", default=None)


def keep_mask(rng: Any, shape: tuple[int, ...], p: float) -> Any:
    """Dropout's keep mask: ``resolve_rng(rng).random(shape) >= p`` on the host.

    While a compiled step is traced (:func:`mask_source`), the mask comes from the step
    instead: compiled code must not bake one draw in, so the step draws the same masks on
    the host at every call, from the same generators, and passes them in.
    """
    source = _mask_source.get()
    if source is not None:
        return source.keep_mask(rng, shape, p)
    return draw_keep_mask(rng, shape, p)


def draw_keep_mask(rng: Any, shape: tuple[int, ...], p: float) -> np.ndarray:
    """``resolve_rng(rng).random(shape) >= p``: the host draw behind every keep mask."""
    return resolve_rng(rng).random(size=shape) >= p


@contextlib.contextmanager
def mask_source(source: MaskSource | None) -> Iterator[MaskSource | None]:
    """Take :func:`keep_mask`'s masks from ``source`` inside the block."""
    token = _mask_source.set(source)
    try:
        yield source
    finally:
        _mask_source.reset(token)
