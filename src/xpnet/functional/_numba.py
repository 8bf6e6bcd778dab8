"""NumPy's compiled kernels: where Numba is installed, loops compiled for what NumPy has no
single function for (a convolution's columns and their fold, a depthwise convolution, batch
normalisation), run on a pool of threads.

Everything here is optional: :func:`load` returns ``None`` where Numba is missing or will
not load, and the op then takes its standard path, which is the kernels' definition and what
the tests hold them to. A kernel module (``_compiled_kernels`` beside its op) imports Numba
at its top and is imported only through :func:`load`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import array_api_compat

from ..config import get_native_kernels

__all__ = [
    "MIN_SHARE",
    "applies",
    "available",
    "compilable",
    "contiguous",
    "load",
    "run_shared",
    "shares",
    "threads",
    "vector_or_empty",
]

# Shares of a kernel smaller than this many elements are not worth a thread hand-off.
MIN_SHARE = 1 << 16


@functools.cache
def _numba_loads() -> bool:
    if importlib.util.find_spec("numba") is None:
        return False
    try:
        importlib.import_module("numba")
    except Exception:  # an installed Numba that does not support this NumPy or Python
        return False
    return True


def available() -> bool:
    """Whether Numba is installed and loads, so that the compiled kernels can run."""
    return _numba_loads()


@functools.cache
def load(module: str) -> Any:
    """The kernel module ``module`` (absolute name), or ``None`` without a working Numba or
    where the module will not load (say, no folder Numba may cache compiled code in): then
    a warning, once, and the standard path."""
    if not _numba_loads():
        return None
    try:
        return importlib.import_module(module)
    except Exception as error:
        warnings.warn(
            f"xpnet: NumPy's compiled kernels in {module} are unavailable ({error}); "
            "those ops take the standard path",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def applies(xp: Any, *arrays: Any, kernels: str) -> bool:
    """Whether an op on ``arrays`` of namespace ``xp`` may take a compiled kernel of the
    module ``kernels`` now: NumPy, :func:`xpnet.config.native_kernels` on, every array
    float32 or float64, and the module loaded (see :func:`load`)."""
    return (
        get_native_kernels()
        and array_api_compat.is_numpy_namespace(xp)
        and all(compilable(a) for a in arrays)
        and load(kernels) is not None
    )


def compilable(x: Any) -> bool:
    """Whether the kernels take ``x``'s dtype (float32 and float64)."""
    return str(x.dtype) in ("float32", "float64")


def contiguous(xp: Any, x: Any, shape: tuple[int, ...] | None = None) -> Any:
    """``x`` (a NumPy array: only the NumPy path takes the kernels) reshaped to ``shape``
    and C-contiguous, as the kernels' flat indexing needs: a view where it already is,
    else one copy."""
    shape = tuple(x.shape) if shape is None else shape
    return xp.reshape(x, shape, copy=None if x.flags.c_contiguous else True)


def vector_or_empty(xp: Any, v: Any, dtype: Any) -> Any:
    """An optional per-channel vector for a kernel: itself (C-contiguous), or an empty one
    that the kernel reads as absent."""
    return xp.empty((0,), dtype=dtype) if v is None else contiguous(xp, v)


@functools.cache
def threads() -> int:
    """Threads a kernel's shares run on: Numba's count (``NUMBA_NUM_THREADS``, by default
    the machine's cores)."""
    return max(1, int(importlib.import_module("numba").config.NUMBA_NUM_THREADS))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(1, threads() - 1), thread_name_prefix="xpnet-kernel")


def shares(units: int, elements: int) -> list[tuple[int, int]]:
    """``units`` rows, images or channels (of ``elements`` elements in all) cut into one
    range per thread, fewer where a share would be too small to be worth a hand-off."""
    count = max(1, min(threads(), units, elements // MIN_SHARE))
    bounds = [units * k // count for k in range(count + 1)]
    return list(itertools.pairwise(bounds))


def run_shared(kernel: Any, args: tuple[Any, ...], parts: list[tuple[Any, ...]]) -> None:
    """``kernel(*args, *part)`` for every part at once, the caller running the first.

    The kernels release the GIL; idle pool threads wait on a lock, where Numba's OpenMP
    threads would spin and take the cores from OpenBLAS's GEMM that follows (measured, a
    stride-2 3x3 conv forward and backward: 58 ms with Numba's ``parallel=True`` on GNU
    OpenMP's default wait policy, 19 ms so).
    """
    others = [_pool().submit(kernel, *args, *part) for part in parts[1:]]
    kernel(*args, *parts[0])
    for future in others:
        future.result()
