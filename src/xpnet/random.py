"""Seeded host randomness.

The Array API standard has no random module, so every random draw in xpnet (dropout
masks, and later initialisation and shuffling) comes from one NumPy generator on the host
and is then moved to the array's device. One seed therefore gives the same numbers on
every backend.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["Generator", "get_rng", "resolve_rng", "seed"]

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
