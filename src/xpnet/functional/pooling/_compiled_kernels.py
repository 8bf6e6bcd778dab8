"""Max pooling over tiling windows for NumPy arrays, compiled by Numba (imported only
through :func:`xpnet.functional._numba.load`).

Each kernel does the planes ``[start, stop)`` of C-contiguous ``(N * C, H, W)`` arrays, so
threads running shares of planes at once never write the same element, and releases the
GIL for that. The rule is the standard path's (:mod:`._max`): a window's maximum is its
first maximal element in row-major order, a NaN counting as maximal (so the first NaN).
"""

from __future__ import annotations

from typing import Any

from numba import njit, uintp

__all__ = ["tiled_max", "tiled_max_pullback"]


@njit(cache=True, nogil=True)
def tiled_max(
    x: Any, kernel: tuple[int, int], y: Any, taps: Any, record: bool, start: int, stop: int
) -> None:
    """Each ``kernel``-sized tile's maximum of ``x`` ``(P, H, W)`` into ``y`` ``(P, OH,
    OW)`` (the tiles from the top left corner; rows and columns past the last whole tile are
    left out), and with ``record`` its flat offset ``i * kW + j`` into ``taps`` (uint8, like
    ``y``)."""
    _, height, width = x.shape
    _, oh, ow = y.shape
    kh, kw = kernel
    source, target, offsets = x.reshape(-1), y.reshape(-1), taps.reshape(-1)
    # Offset by offset along a whole output row: branch-free selects over contiguous runs
    # of outputs, which the compiler vectorises (one window at a time was 4x slower).
    for p in range(start, stop):
        for r in range(oh):
            corner = uintp((p * height + r * kh) * width)
            out = uintp((p * oh + r) * ow)
            for q in range(uintp(ow)):
                target[out + q] = source[corner + q * uintp(kw)]
            if record:
                for q in range(uintp(ow)):
                    offsets[out + q] = 0
            for k in range(1, kh * kw):
                read = corner + uintp((k // kw) * width + k % kw)
                tap = offsets.dtype.type(k)
                for q in range(uintp(ow)):
                    value = source[read + q * uintp(kw)]
                    best = target[out + q]
                    # A later element wins when greater, or when NaN and the best is not.
                    wins = (value > best) | ((value != value) & (best == best))
                    target[out + q] = value if wins else best
                    if record:
                        offsets[out + q] = tap if wins else offsets[out + q]


@njit(cache=True, nogil=True)
def tiled_max_pullback(
    dy: Any, taps: Any, kernel: tuple[int, int], dx: Any, start: int, stop: int
) -> None:
    """The pullback of :func:`tiled_max`: overwrite planes ``start:stop`` of ``dx`` ``(P, H,
    W)`` with each tile's cotangent at its recorded offset, zero elsewhere."""
    _, height, width = dx.shape
    _, oh, ow = dy.shape
    kh, kw = kernel
    grad, offsets, target = dy.reshape(-1), taps.reshape(-1), dx.reshape(-1)
    for p in range(start, stop):
        plane = uintp(p * height * width)
        for q in range(uintp(height * width)):
            target[plane + q] = 0
        for r in range(oh):
            corner = plane + uintp(r * kh * width)
            out = uintp((p * oh + r) * ow)
            for q in range(uintp(ow)):
                tap = offsets[out + q]
                target[corner + uintp((tap // kw) * width + q * kw + tap % kw)] = grad[out + q]
