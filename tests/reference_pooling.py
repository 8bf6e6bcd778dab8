"""Pooling written from the definitions with plain loops, in float64 (the walkthrough's style).

Windows are walked element by element; padding is never materialized: a window position is
used only if it falls inside the input (max pooling's implicit padding is -inf, so it never
wins; average pooling's is zero, so only the divisor sees it).
"""

from __future__ import annotations

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
