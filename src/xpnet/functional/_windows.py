"""Sliding windows without ``as_strided`` or scatter: im2col and its adjoint, col2im.

The standard has neither a padding function nor strided views nor scatter-add, so:

* padding concatenates blocks of a constant;
* window extraction takes one strided slice per kernel offset and stacks them;
* the adjoint (col2im) zero-stuffs each offset's gradient to the input's stride, shifts it
  into place by padding and sums; nothing is written in place.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

__all__ = [
    "crop2d",
    "extract_windows",
    "fold_taps",
    "fold_windows",
    "pad2d",
    "pad_axis",
    "sliding_output_size",
    "window_slices",
    "zero_stuff",
]


def pad_axis(xp: Any, x: Any, axis: int, before: int, after: int, value: float) -> Any:
    """Pad one axis with a constant by concatenation."""
    if before == 0 and after == 0:
        return x
    parts = []
    device = array_api_compat.device(x)
    for width in (before, after):
        shape = list(x.shape)
        shape[axis] = width
        parts.append(xp.full(tuple(shape), value, dtype=x.dtype, device=device) if width else None)
    pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
    return xp.concat(pieces, axis=axis)


def pad2d(xp: Any, x: Any, pads: tuple[int, int, int, int], value: float = 0.0) -> Any:
    """Pad the last two axes; ``pads`` is ``(top, bottom, left, right)``."""
    top, bottom, left, right = pads
    x = pad_axis(xp, x, x.ndim - 2, top, bottom, value)
    return pad_axis(xp, x, x.ndim - 1, left, right, value)


def crop2d(x: Any, pads: tuple[int, int, int, int]) -> Any:
    """Undo :func:`pad2d`: drop ``pads`` rows and columns from the last two axes."""
    top, bottom, left, right = pads
    height, width = x.shape[-2], x.shape[-1]
    return x[..., top : height - bottom, left : width - right]


def sliding_output_size(
    name: str, size: int, kernel: int, stride: int, dilation: int, padded: int
) -> int:
    """Number of window positions along one axis (floor mode), with a clear error."""
    span = dilation * (kernel - 1) + 1
    if padded < span:
        raise ValueError(
            f"{name}: kernel of extent {span} (kernel {kernel}, dilation {dilation}) is larger "
            f"than the padded input ({padded}, from input size {size})"
        )
    return (padded - span) // stride + 1


def window_slices(
    x: Any,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_size: tuple[int, int],
) -> list[Any]:
    """One strided view per kernel offset of an already padded ``(A, B, H, W)`` array.

    Entry ``i * kw + j`` has shape ``(A, B, OH, OW)`` and holds, for each output position,
    the element under kernel offset ``(i, j)``.
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    return [
        x[..., i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]


def extract_windows(
    xp: Any,
    x: Any,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_size: tuple[int, int],
    window_axis: int = 2,
) -> Any:
    """Gather every window of an already padded ``(A, B, H, W)`` array.

    Returns
    -------
    array
        With the default ``window_axis=2``, shape ``(A, B, kh * kw, OH, OW)``: entry
        ``[:, :, i * kw + j]`` holds, for each output position, the input element under
        kernel offset ``(i, j)``. ``window_axis=1`` gives ``(A, kh * kw, B, OH, OW)``.
    """
    return xp.stack(window_slices(x, kernel, stride, dilation, out_size), axis=window_axis)


def zero_stuff(xp: Any, x: Any, axis: int, stride: int) -> Any:
    """Insert ``stride - 1`` zeros between consecutive entries along ``axis``."""
    if stride == 1:
        return x
    axis = axis % x.ndim
    count = x.shape[axis]
    zeros = xp.zeros_like(x)
    # Stack [x, 0, ..., 0] just after ``axis``; reshaping interleaves them.
    stacked = xp.stack([x] + [zeros] * (stride - 1), axis=axis + 1)
    shape = list(x.shape)
    shape[axis] = count * stride
    merged = xp.reshape(stacked, tuple(shape))
    keep = (count - 1) * stride + 1
    return merged[(slice(None),) * axis + (slice(0, keep), Ellipsis)]


def fold_taps(
    xp: Any, pieces: list[Any], axis: int, padded_size: int, stride: int, dilation: int
) -> Any:
    """Adjoint of taking, along ``axis``, the strided slices ``[t * dilation ::
    stride]`` of an axis of ``padded_size`` entries (one per tap ``t``, each as long as
    ``pieces[t]``): each piece is zero-stuffed to the stride, shifted to its tap and the
    pieces summed."""
    total = None
    for tap, piece in enumerate(pieces):
        piece = zero_stuff(xp, piece, axis, stride)
        start = tap * dilation
        piece = pad_axis(xp, piece, axis, start, padded_size - start - int(piece.shape[axis]), 0.0)
        total = piece if total is None else total + piece
    assert total is not None, "fold_taps needs at least one piece"
    return total


def fold_windows(
    xp: Any,
    cols: Any,
    padded_size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    window_axis: int = 2,
) -> Any:
    """Adjoint of :func:`extract_windows` (col2im): sum each window back into place.

    Parameters
    ----------
    cols : array
        Shape ``(A, B, kh * kw, OH, OW)`` (or ``(A, kh * kw, B, OH, OW)`` with
        ``window_axis=1``).
    padded_size : (int, int)
        ``(H, W)`` of the padded input the windows were taken from.

    Returns
    -------
    array
        Shape ``(A, B, H, W)``, where every input element receives the sum of the entries
        of ``cols`` that were read from it.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    height, width = padded_size
    total = None
    for i in range(kh):
        row = None
        for j in range(kw):
            index = (slice(None),) * window_axis + (i * kw + j, Ellipsis)
            piece = zero_stuff(xp, cols[index], -1, sw)
            piece = pad_axis(xp, piece, -1, j * dw, width - j * dw - piece.shape[-1], 0.0)
            row = piece if row is None else row + piece
        row = zero_stuff(xp, row, -2, sh)
        row = pad_axis(xp, row, -2, i * dh, height - i * dh - row.shape[-2], 0.0)
        total = row if total is None else total + row
    return total
