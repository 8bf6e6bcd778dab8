"""Pooling written from the definitions with plain loops, in float64 (the walkthrough's style).

Windows are walked element by element; padding is never materialized: a window position is
used only if it falls inside the input (max pooling's implicit padding is -inf, so it never
wins; average pooling's is zero, so only the divisor sees it).
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def pooled_length(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """torch's documented output length of a pooling window along one axis."""
    extent = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return extent // stride + 1
    length = math.ceil(extent / stride) + 1
    # The last window must start inside the input or the left padding.
    if (length - 1) * stride >= size + padding:
        length -= 1
    return length


def max_pool2d_loops(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Max of each window and the flat index ``row * W + col`` of its first maximal element.

    Elements are visited in row-major order and a later one wins only if strictly larger.
    """
    n, c, h, w = x.shape
    oh = pooled_length(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pooled_length(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    out = np.zeros((n, c, oh, ow))
    indices = np.zeros((n, c, oh, ow), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for p in range(oh):
                for q in range(ow):
                    best, where = -math.inf, None
                    for i in range(kernel[0]):
                        row = p * stride[0] - padding[0] + i * dilation[0]
                        for j in range(kernel[1]):
                            col = q * stride[1] - padding[1] + j * dilation[1]
                            if not (0 <= row < h and 0 <= col < w):
                                continue
                            value = x[b, ch, row, col]
                            if where is None or value > best:
                                best, where = value, row * w + col
                    assert where is not None, "window outside the input"
                    out[b, ch, p, q] = best
                    indices[b, ch, p, q] = where
    return out, indices


def max_pool2d_grad_loops(
    x_shape: tuple[int, ...], indices: np.ndarray, dy: np.ndarray
) -> np.ndarray:
    """Gradient of max pooling: each output's cotangent goes to the element it came from."""
    n, c, h, w = x_shape
    dx = np.zeros((n, c, h * w))
    for b in range(n):
        for ch in range(c):
            for p in range(dy.shape[2]):
                for q in range(dy.shape[3]):
                    dx[b, ch, indices[b, ch, p, q]] += dy[b, ch, p, q]
    return dx.reshape(x_shape)


def avg_pool2d_loops(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Sum of the input elements under each window, divided as torch divides.

    The divisor counts window positions inside the input plus, with ``count_include_pad``,
    those in the padding (not those hanging past the padding in ceil mode), unless
    ``divisor_override`` is given.
    """
    n, c, h, w = x.shape
    oh = pooled_length(h, kernel[0], stride[0], padding[0], 1, ceil_mode)
    ow = pooled_length(w, kernel[1], stride[1], padding[1], 1, ceil_mode)
    out = np.zeros((n, c, oh, ow))
    for b in range(n):
        for ch in range(c):
            for p in range(oh):
                for q in range(ow):
                    total, inside, padded = 0.0, 0, 0
                    for i in range(kernel[0]):
                        row = p * stride[0] - padding[0] + i
                        for j in range(kernel[1]):
                            col = q * stride[1] - padding[1] + j
                            if 0 <= row < h and 0 <= col < w:
                                total += x[b, ch, row, col]
                                inside += 1
                            elif -padding[0] <= row < h + padding[0] and (
                                -padding[1] <= col < w + padding[1]
                            ):
                                padded += 1
                    if divisor_override is not None:
                        divisor = divisor_override
                    else:
                        divisor = inside + padded if count_include_pad else inside
                    out[b, ch, p, q] = total / divisor
    return out


def adaptive_avg_pool2d_loops(x: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Mean over torch's bins: rows ``floor(i * H / OH)`` to ``ceil((i + 1) * H / OH)``."""
    n, c, h, w = x.shape
    oh, ow = output_size
    out = np.zeros((n, c, oh, ow))
    for b in range(n):
        for ch in range(c):
            for p in range(oh):
                top, bottom = (p * h) // oh, math.ceil((p + 1) * h / oh)
                for q in range(ow):
                    left, right = (q * w) // ow, math.ceil((q + 1) * w / ow)
                    total = 0.0
                    for row in range(top, bottom):
                        for col in range(left, right):
                            total += x[b, ch, row, col]
                    out[b, ch, p, q] = total / ((bottom - top) * (right - left))
    return out


def _windows_nd(size, kernel, stride, padding, dilation, ceil_mode):
    """Every output position and, per position, the input positions of its window in
    row-major order (``None`` where a tap falls in the padding or past it)."""
    out = [
        pooled_length(n, k, s, p, d, ceil_mode)
        for n, k, s, p, d in zip(size, kernel, stride, padding, dilation, strict=True)
    ]
    for position in itertools.product(*(range(o) for o in out)):
        taps = []
        for offset in itertools.product(*(range(k) for k in kernel)):
            source = tuple(
                o * s - p + t * d
                for o, t, s, p, d in zip(position, offset, stride, padding, dilation, strict=True)
            )
            inside = all(0 <= i < n for i, n in zip(source, size, strict=True))
            taps.append(source if inside else None)
        yield position, taps, out


def max_pool_nd_loops(x, kernel, stride, padding, dilation, ceil_mode=False):
    """Max pooling of any rank on a batched ``(N, C, *size)`` array: each window's first
    maximal element in row-major order, and its flat (row-major) index."""
    size = x.shape[2:]
    values, indices = None, None
    for position, taps, out in _windows_nd(size, kernel, stride, padding, dilation, ceil_mode):
        if values is None:
            values = np.zeros((*x.shape[:2], *out))
            indices = np.zeros((*x.shape[:2], *out), dtype=np.int64)
        for b in range(x.shape[0]):
            for c in range(x.shape[1]):
                best, where = -math.inf, None
                for source in taps:
                    if source is None:
                        continue
                    value = x[(b, c, *source)]
                    if where is None or value > best:
                        best, where = value, int(np.ravel_multi_index(source, size))
                values[(b, c, *position)] = best
                indices[(b, c, *position)] = where
    return values, indices


def max_pool_grad_loops(x_shape, indices, dy):
    """Each output's cotangent added to the input element its flat index names."""
    dx = np.zeros((*x_shape[:2], math.prod(x_shape[2:])))
    for b in range(x_shape[0]):
        for c in range(x_shape[1]):
            for flat, g in zip(indices[b, c].ravel(), dy[b, c].ravel(), strict=True):
                dx[b, c, flat] += g
    return dx.reshape(x_shape)


def avg_pool_nd_loops(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
                      divisor_override=None):  # fmt: skip
    """Average pooling of any rank: the window's input sum over torch's divisor (the taps
    inside the input, plus those in the padding with ``count_include_pad``)."""
    size = x.shape[2:]
    ones = (1,) * len(size)
    out_values = None
    for position, taps, out in _windows_nd(size, kernel, stride, padding, ones, ceil_mode):
        if out_values is None:
            out_values = np.zeros((*x.shape[:2], *out))
        inside = [t for t in taps if t is not None]
        padded = 0
        for offset in itertools.product(*(range(k) for k in kernel)):
            source = [
                o * s - p + t for o, t, s, p in zip(position, offset, stride, padding, strict=True)
            ]
            if all(-p <= i < n + p for i, n, p in zip(source, size, padding, strict=True)):
                padded += 1
        divisor = divisor_override or (padded if count_include_pad else len(inside))
        for b in range(x.shape[0]):
            for c in range(x.shape[1]):
                total = sum(x[(b, c, *t)] for t in inside)
                out_values[(b, c, *position)] = total / divisor
    return out_values


def adaptive_bins(n: int, out: int) -> list[range]:
    """torch's adaptive bins: ``floor(i * n / out)`` up to ``ceil((i + 1) * n / out)``."""
    return [range((i * n) // out, math.ceil((i + 1) * n / out)) for i in range(out)]


def adaptive_pool_nd_loops(x, output_size, reduce):
    """Adaptive pooling of any rank: ``reduce`` ("avg" or "max") over each box of bins; for
    max also the flat index of the first maximal element (row-major)."""
    size = x.shape[2:]
    bins = [adaptive_bins(n, o) for n, o in zip(size, output_size, strict=True)]
    values = np.zeros((*x.shape[:2], *output_size))
    indices = np.zeros((*x.shape[:2], *output_size), dtype=np.int64)
    for position in itertools.product(*(range(o) for o in output_size)):
        box = list(itertools.product(*(bins[a][p] for a, p in enumerate(position))))
        for b in range(x.shape[0]):
            for c in range(x.shape[1]):
                entries = [x[(b, c, *source)] for source in box]
                if reduce == "avg":
                    values[(b, c, *position)] = sum(entries) / len(entries)
                    continue
                best = max(range(len(entries)), key=lambda i: (entries[i], -i))
                values[(b, c, *position)] = entries[best]
                indices[(b, c, *position)] = np.ravel_multi_index(box[best], size)
    return values, indices
