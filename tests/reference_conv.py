"""Convolution written from the definition with plain loops, in float64 (the walkthrough's style)."""

from __future__ import annotations

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
