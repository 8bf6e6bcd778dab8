"""Convolution written from the definition with plain loops, in float64 (the walkthrough's style)."""

from __future__ import annotations

import itertools

import numpy as np


def convolve2d_single(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The walkthrough's convolve2d: one 2-D image, one 2-D kernel, stride 1, no padding."""
    kh, kw = kernel.shape
    oh, ow = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = np.sum(image[i : i + kh, j : j + kw] * kernel)
    return out


def conv2d_loops(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """y[n, o, p, q] = b[o] + sum_{c, i, j} x_pad[n, g*Cg + c, p*sh + i*dh, q*sw + j*dw] w[o, c, i, j]."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    top, bottom, left, right = pads
    xp = np.zeros((n, c, h + top + bottom, wd + left + right))
    xp[:, :, top : top + h, left : left + wd] = x
    sh, sw = stride
    dh, dw = dilation
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow))
    for batch in range(n):
        for out_ch in range(o):
            group = out_ch // og
            for p in range(oh):
                for q in range(ow):
                    total = 0.0 if b is None else b[out_ch]
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                total += (
                                    xp[batch, group * cg + ci, p * sh + i * dh, q * sw + j * dw]
                                    * w[out_ch, ci, i, j]
                                )
                    y[batch, out_ch, p, q] = total
    return y


def conv_nd_loops(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    dilation: tuple[int, ...],
    groups: int = 1,
) -> np.ndarray:
    """A convolution of any rank from the definition, batched ``(N, C, *size)``:
    ``y[n, o, p] = b[o] + sum_{c, k} x_pad[n, g*Cg + c, p*s + k*d] w[o, c, k]`` (p, k tuples)."""
    rank = x.ndim - 2
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    kernel = w.shape[2:]
    padded = np.zeros((n, c, *(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads, strict=True))))
    padded[
        (
            slice(None),
            slice(None),
            *(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[2:], pads, strict=True)),
        )
    ] = x
    out_size = [
        (padded.shape[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
        for i in range(rank)
    ]
    og = o // groups
    y = np.zeros((n, o, *out_size))
    for out_ch in range(o):
        group = out_ch // og
        channels = slice(group * cg, (group + 1) * cg)
        for position in itertools.product(*(range(s) for s in out_size)):
            total = np.zeros(n) if b is None else np.full(n, b[out_ch])
            for offset in itertools.product(*(range(k) for k in kernel)):
                source = tuple(
                    p * s + k * d
                    for p, k, s, d in zip(position, offset, stride, dilation, strict=True)
                )
                total += (
                    padded[(slice(None), channels, *source)] @ w[(out_ch, slice(None), *offset)]
                )
            y[(slice(None), out_ch, *position)] = total
    return y


def conv_transpose_nd_loops(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int = 1,
) -> np.ndarray:
    """A transposed convolution from its definition, batched: every input position ``p``
    adds ``x[n, g*Cg + c, p] * w[g*Cg + c, o, k]`` to output position ``p*s + k*d - padding``
    of channel ``g*Og + o`` (positions outside the output are dropped)."""
    n, c = x.shape[:2]
    _, og = w.shape[:2]
    kernel = w.shape[2:]
    cg = c // groups
    out_size = [
        (s - 1) * st - 2 * p + d * (k - 1) + op + 1
        for s, st, p, d, k, op in zip(
            x.shape[2:], stride, padding, dilation, kernel, output_padding, strict=True
        )
    ]
    y = np.zeros((n, og * groups, *out_size))
    for in_ch in range(c):
        group = in_ch // cg
        for position in itertools.product(*(range(s) for s in x.shape[2:])):
            for offset in itertools.product(*(range(k) for k in kernel)):
                target = tuple(
                    p * s + k * d - pad
                    for p, k, s, d, pad in zip(
                        position, offset, stride, dilation, padding, strict=True
                    )
                )
                if all(0 <= t < size for t, size in zip(target, out_size, strict=True)):
                    outs = slice(group * og, (group + 1) * og)
                    y[(slice(None), outs, *target)] += np.outer(
                        x[(slice(None), in_ch, *position)], w[(in_ch, slice(None), *offset)]
                    )
    if b is not None:
        y += b.reshape((1, -1) + (1,) * len(kernel))
    return y
