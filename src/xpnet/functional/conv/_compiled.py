"""NumPy's native convolution kernels: im2col and col2im compiled by Numba.

NumPy has no convolution of its own, and its standard path pays for that in copies: the
columns are stacked from slices (at stride 2 a strided copy, a third of a contiguous
copy's rate), the flat layout computes wrapped positions it then drops, and col2im is one
add per kernel offset. With Numba installed (the ``numba`` extra), the ``"compiled"``
strategy writes the exact columns in one pass over the input and folds their gradient
back in one pass, straight into ``(N, C, H, W)``; the three GEMMs stay NumPy's (OpenBLAS),
laid out as the other column strategies lay them (:mod:`._gemm`).

It runs on NumPy only, for float32 and float64, and only where
:func:`xpnet.config.native_kernels` allows; the standard strategies are its definition and
what the tests check it against.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import array_api_compat
import numpy

from . import _depthwise, _flat, _gemm, _strided
from ._plan import ConvPlan, concat_chunks

__all__ = [
    "applies",
    "available",
    "columns",
    "depthwise_forward",
    "depthwise_input_grad",
    "depthwise_weight_grad",
    "input_grad",
]

# Shares of a kernel smaller than this many elements are not worth a thread hand-off.
MIN_SHARE = 1 << 16


@functools.cache
def _kernels() -> Any:
    """The compiled kernels' module, or ``None`` where Numba is missing or will not load."""
    if importlib.util.find_spec("numba") is None:
        return None
    try:
        return importlib.import_module(f"{__package__}._compiled_kernels")
    except Exception:  # an installed Numba that does not support this NumPy or Python
        return None


def available() -> bool:
    """Whether Numba is installed and loads, so the compiled kernels can run."""
    return _kernels() is not None


def applies(plan: ConvPlan) -> bool:
    """Whether this plan's convolution may take the compiled kernels: NumPy arrays on a
    device that is not launch-bound, with Numba available."""
    return array_api_compat.is_numpy_namespace(plan.xp) and available()


@functools.cache
def _threads() -> int:
    """Threads a kernel's shares run on: Numba's count (``NUMBA_NUM_THREADS``, by default
    the machine's cores)."""
    return max(1, int(importlib.import_module("numba").config.NUMBA_NUM_THREADS))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_threads() - 1, thread_name_prefix="xpnet-kernel")


def _shares(units: int, elements: int) -> list[tuple[int, int]]:
    """``units`` rows, images or channels (of ``elements`` elements in all) cut into one
    range per thread, fewer where a share would be too small to be worth a hand-off."""
    count = max(1, min(_threads(), units, elements // MIN_SHARE))
    bounds = [units * k // count for k in range(count + 1)]
    return list(itertools.pairwise(bounds))


def _run_shared(kernel: Any, args: tuple[Any, ...], shares: list[tuple[Any, ...]]) -> None:
    """``kernel(*args, *share)`` for every share at once, the caller running the first.

    The kernels release the GIL; idle pool threads wait on a lock, where Numba's OpenMP
    threads would spin and take the cores from OpenBLAS's GEMM that follows (measured, a
    stride-2 3x3 conv forward and backward: 58 ms with Numba's ``parallel=True`` on GNU
    OpenMP's default wait policy, 19 ms so).
    """
    others = [_pool().submit(kernel, *args, *share) for share in shares[1:]]
    kernel(*args, *shares[0])
    for future in others:
        future.result()


def _compilable(x: Any) -> bool:
    return str(x.dtype) in ("float32", "float64")


def _front(plan: ConvPlan) -> tuple[int, int]:
    return plan.pads[0], plan.pads[2]


def columns(plan: ConvPlan, x: Any) -> Any:
    """im2col of a batched chunk, channel-major: ``(groups, C/groups * kh * kw, n * OH *
    OW)``, the layout of :func:`._strided.columns` (which it falls back to for other
    dtypes)."""
    if not _compilable(x):
        return _strided.columns(plan, x)
    xp = plan.xp
    n = x.shape[0]
    kk = plan.kernel[0] * plan.kernel[1]
    cols = xp.empty((plan.in_channels * kk, n * plan.positions), dtype=x.dtype)
    x = numpy.ascontiguousarray(x)  # the kernels index flat arrays
    args = (x, plan.kernel, plan.stride, plan.dilation, _front(plan), plan.out_size, cols)
    _run_shared(_kernels().im2col, args, _shares(int(cols.shape[0]), int(cols.size)))
    return xp.reshape(cols, (plan.groups, plan.patch, n * plan.positions))


def input_grad(plan: ConvPlan, weight: Any, dy: Any) -> Any:
    """dX: the columns' gradient ``W^T @ dY``, folded back onto the input by the compiled
    col2im (the strided strategy's fold for other dtypes)."""
    if not _compilable(dy):
        return _strided.input_grad(plan, weight, dy)
    xp = plan.xp
    kk = plan.kernel[0] * plan.kernel[1]
    oh, ow = plan.out_size
    height = plan.padded[0] - plan.pads[0] - plan.pads[1]
    width = plan.padded[1] - plan.pads[2] - plan.pads[3]
    kernels_t = xp.matrix_transpose(_flat.kernels(plan, weight))

    def chunk(start: int, stop: int) -> Any:
        m = stop - start
        dy_cm = xp.reshape(
            xp.permute_dims(dy[start:stop, ...], (1, 0, 2, 3)),
            (plan.groups, plan.out_channels // plan.groups, m * oh * ow),
        )
        dcols = xp.reshape(kernels_t @ dy_cm, (plan.in_channels * kk, m * oh * ow))
        # A chunk-sized result, copied into the whole one: measured faster than folding
        # straight into the whole result (3x3, 32 channels at 28 px: 11 ms against 14).
        dx = xp.empty((m, plan.in_channels, height, width), dtype=dy.dtype)
        # By images where there are enough, so each thread writes one run of memory.
        if m >= _threads():
            shares = [(images, (0, plan.in_channels)) for images in _shares(m, dcols.size)]
        else:
            shares = [((0, m), part) for part in _shares(plan.in_channels, dcols.size)]
        args = (dcols, plan.kernel, plan.stride, plan.dilation, _front(plan), plan.out_size, dx)
        _run_shared(_kernels().col2im, args, shares)
        return dx

    # Per image: the cotangent's channel-major copy, the column gradient and the input's.
    per_image = (plan.out_channels + plan.groups * plan.patch) * plan.positions
    return concat_chunks(plan, dy, per_image + plan.in_channels * height * width, chunk)


def _by_images(batch: int, elements: int) -> list[tuple[tuple[int, int]]]:
    return [(images,) for images in _shares(batch, elements)]


def _taps(plan: ConvPlan, weight: Any) -> Any:
    """The depthwise weight ``(O, 1, kh, kw)`` as C-contiguous ``(O, kh, kw)``."""
    return numpy.ascontiguousarray(plan.xp.reshape(weight, (plan.out_channels, *plan.kernel)))


def depthwise_forward(plan: ConvPlan, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
    """One input channel per group, directly: each output plane the sum over the kernel
    offsets of a tap times a window of its input plane (the column GEMM of
    :mod:`._gemm` for other dtypes)."""
    if not _compilable(x):
        return _gemm.forward(plan, x, weight, keep)
    x = numpy.ascontiguousarray(x)
    y = plan.xp.empty((plan.batch, plan.out_channels, *plan.out_size), dtype=x.dtype)
    args = (x, _taps(plan, weight), plan.stride, plan.dilation, _front(plan), y)
    _run_shared(_kernels().depthwise_forward, args, _by_images(plan.batch, int(y.size)))
    return y, None


def depthwise_input_grad(plan: ConvPlan, weight: Any, dy: Any) -> Any:
    """dX of a depthwise convolution, directly (the standard pullback for other dtypes)."""
    if not _compilable(dy):
        return _depthwise.input_grad(plan, weight, dy)
    dy = numpy.ascontiguousarray(dy)
    height = plan.padded[0] - plan.pads[0] - plan.pads[1]
    width = plan.padded[1] - plan.pads[2] - plan.pads[3]
    dx = plan.xp.empty((plan.batch, plan.in_channels, height, width), dtype=dy.dtype)
    args = (dy, _taps(plan, weight), plan.stride, plan.dilation, _front(plan), dx)
    _run_shared(_kernels().depthwise_input_grad, args, _by_images(plan.batch, int(dy.size)))
    return dx


def depthwise_weight_grad(plan: ConvPlan, x: Any, dy: Any, saved: Any) -> Any:
    """dW of a depthwise convolution, directly, one output channel per share (the standard
    pullback for other dtypes)."""
    if not _compilable(dy):
        return _depthwise.weight_grad(plan, x, dy, saved)
    x, dy = numpy.ascontiguousarray(x), numpy.ascontiguousarray(dy)
    dtaps = plan.xp.empty((plan.out_channels, *plan.kernel), dtype=dy.dtype)
    args = (x, dy, plan.stride, plan.dilation, _front(plan), dtaps)
    shares = [(part,) for part in _shares(plan.out_channels, int(dy.size))]
    _run_shared(_kernels().depthwise_weight_grad, args, shares)
    return plan.xp.reshape(dtaps, (plan.out_channels, 1, *plan.kernel))
