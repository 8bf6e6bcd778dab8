"""im2col and col2im, and direct depthwise passes, for NumPy arrays, compiled by Numba
(imported only where Numba is).

Each loops over the exact windows of a 2-D convolution (no padded copy of the input, no
wrapped positions, no per-offset temporaries) and does one share of the work (column rows,
images, or channels, as its last argument says), so that threads running shares at once
never write the same element; they release the GIL for that (the caller,
:mod:`._compiled`, runs the shares on its threads). Their definition is
:func:`xpnet.functional.conv2d`'s standard path, which the tests hold them to.
"""

from __future__ import annotations

from typing import Any

from numba import njit, uintp

__all__ = [
    "col2im",
    "depthwise_forward",
    "depthwise_input_grad",
    "depthwise_weight_grad",
    "direct_forward",
    "direct_weight_grad",
    "im2col",
    "lay_out_biased",
]


@njit(cache=True, nogil=True)
def _inside(offset: int, stride: int, count: int, size: int) -> tuple[int, int]:
    """The output positions ``q`` in ``[0, count)`` whose input position ``q * stride +
    offset`` lies in ``[0, size)``: the range ``[lo, hi)`` (empty when ``hi == lo``)."""
    lo = min(max(-(offset // stride), 0), count)  # ceil(-offset / stride), at least 0
    hi = -((offset - size) // stride)  # ceil((size - offset) / stride)
    hi = min(max(hi, lo), count)
    return lo, hi


@njit(cache=True, nogil=True)
def _run_bounds(
    top: int, offset: int, oh: int, height: int, width: int
) -> tuple[int, int, int, int, int]:
    """Where an output row is as wide as an input row (stride 1, "same" width), the
    windows of one kernel offset, ``top`` rows and ``offset`` columns from the output
    position, are one run of the input plane: ``(y0, y1, shift, t0, t1)``, the output rows
    that read inside the image, input index minus output index within a plane, and the
    output indices ``[t0, t1)`` whose reads stay inside the plane (the run's ends beyond it
    are wrapped positions)."""
    y0, y1 = _inside(top, 1, oh, height)
    shift = top * width + offset
    t0 = max(y0 * width, -shift)
    t1 = max(min(y1 * width, height * width - shift), t0)
    return y0, y1, shift, t0, t1


@njit(cache=True, nogil=True)
def _zero_wrapped(a: Any, row: int, y0: int, y1: int, lo: int, hi: int, width: int) -> None:
    """Zero the positions outside ``[lo, hi)`` of output rows ``y0:y1`` of the run starting
    at ``row``: those that wrapped round a row's edge."""
    for y in range(y0, y1):
        edge = uintp(row + y * width)
        for q in range(uintp(lo)):
            a[edge + q] = 0
        for q in range(uintp(hi), uintp(width)):
            a[edge + q] = 0


@njit(cache=True, nogil=True)
def _flat_rows(
    source: Any,
    target: Any,
    first: int,
    c: int,
    top: int,
    offset: int,
    lo: int,
    hi: int,
    shape: tuple[int, int, int, int],
    oh: int,
) -> None:
    """Row ``(c, i, j)`` of :func:`im2col`, starting at ``first``, where each image's window
    is one run (:func:`_run_bounds`): copied as one run (output rows of 8 to 32 elements
    are too short to stream), then the wrapped positions zeroed."""
    n, channels, height, width = shape
    positions = oh * width
    y0, y1, shift, t0, t1 = _run_bounds(top, offset, oh, height, width)
    for b in range(n):
        start = first + b * positions
        row = uintp(start)
        plane = (b * channels + c) * height * width
        for t in range(uintp(t0)):
            target[row + t] = 0
        read = uintp(plane + shift + t0)
        out = row + uintp(t0)
        for t in range(uintp(t1 - t0)):
            target[out + t] = source[read + t]
        for t in range(uintp(t1), uintp(positions)):
            target[row + t] = 0
        _zero_wrapped(target, start, y0, y1, lo, hi, width)


@njit(cache=True, nogil=True)
def im2col(
    x: Any,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    front: tuple[int, int],
    out_size: tuple[int, int],
    cols: Any,
    start: int,
    stop: int,
) -> None:
    """Write rows ``start:stop`` of the windows of a C-contiguous ``x`` ``(n, C, H, W)``
    into a C-contiguous ``cols`` ``(C * kh * kw, n * OH * OW)``: row ``(c, i, j)``, column
    ``(b, oh, ow)`` holds ``x[b, c, oh * sh - top + i * dh, ow * sw - left + j * dw]``, zero
    outside the image (``front`` is ``(top, left)``)."""
    n, channels, height, width = x.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = out_size
    positions, total = oh * ow, cols.shape[1]
    # Flat arrays and unsigned offsets: a signed index costs a wrap-around test per
    # element, which keeps the compiler from vectorising the copy (measured 3x slower).
    source, target = x.reshape(-1), cols.reshape(-1)
    for r in range(start, stop):
        c, i, j = r // (kh * kw), (r // kw) % kh, r % kw
        offset = j * dilation[1] - front[1]
        lo, hi = _inside(offset, sw, ow, width)
        if sh == 1 and sw == 1 and ow == width:
            _flat_rows(
                source,
                target,
                r * total,
                c,
                i * dilation[0] - front[0],
                offset,
                lo,
                hi,
                x.shape,
                oh,
            )
            continue
        for b in range(n):
            for y in range(oh):
                h = y * sh - front[0] + i * dilation[0]
                row = uintp(r * total + b * positions + y * ow)
                if h < 0 or h >= height:
                    lo_here, hi_here = ow, ow
                else:
                    lo_here, hi_here = lo, hi
                for q in range(uintp(lo_here)):
                    target[row + q] = 0
                if hi_here > lo_here:
                    read = uintp(((b * channels + c) * height + h) * width + lo * sw + offset)
                    out = row + uintp(lo)
                    if sw == 1:  # a contiguous run, which the compiler vectorises
                        for q in range(uintp(hi - lo)):
                            target[out + q] = source[read + q]
                    elif sw == 2:  # a constant stride the compiler vectorises
                        for q in range(uintp(hi - lo)):
                            target[out + q] = source[read + q * uintp(2)]
                    else:
                        step = uintp(sw)
                        for q in range(uintp(hi - lo)):
                            target[out + q] = source[read + q * step]
                for q in range(uintp(hi_here), uintp(ow)):
                    target[row + q] = 0


@njit(cache=True, nogil=True)
def _add_flat_rows(
    source: Any,
    target: Any,
    row: int,
    plane: int,
    top: int,
    offset: int,
    lo: int,
    hi: int,
    oh: int,
    shape: tuple[int, int, int, int],
) -> None:
    """The adjoint of :func:`_flat_rows` for one image and kernel offset: add the column
    gradient starting at ``row`` onto the input plane starting at ``plane`` as one run. The
    wrapped positions are zeroed in the column gradient first (a temporary of the caller's,
    read once), so that the run adds nothing where :func:`im2col` wrote zeros."""
    height, width = shape[2], shape[3]
    y0, y1, shift, t0, t1 = _run_bounds(top, offset, oh, height, width)
    _zero_wrapped(source, row, y0, y1, lo, hi, width)
    read = uintp(row + t0)
    out = uintp(plane + shift + t0)
    for t in range(uintp(t1 - t0)):
        target[out + t] += source[read + t]


@njit(cache=True, nogil=True)
def col2im(
    cols: Any,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    front: tuple[int, int],
    out_size: tuple[int, int],
    dx: Any,
    images: tuple[int, int],
    channels: tuple[int, int],
) -> None:
    """The adjoint of :func:`im2col`: overwrite the ``images`` and ``channels`` ranges of a
    C-contiguous ``dx`` ``(n, C, H, W)`` with the sum, over the windows, of each entry of a
    C-contiguous ``cols`` added back where :func:`im2col` read it."""
    _, count, height, width = dx.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = out_size
    positions, total, plane = oh * ow, cols.shape[1], height * width
    source, target = cols.reshape(-1), dx.reshape(-1)
    for b in range(images[0], images[1]):
        for c in range(channels[0], channels[1]):
            first = uintp((b * count + c) * plane)
            for q in range(uintp(plane)):
                target[first + q] = 0
            for i in range(kh):
                for j in range(kw):
                    r = (c * kh + i) * kw + j
                    offset = j * dilation[1] - front[1]
                    lo, hi = _inside(offset, sw, ow, width)
                    if hi <= lo:
                        continue
                    if sh == 1 and sw == 1 and ow == width:
                        top = i * dilation[0] - front[0]
                        row = r * total + b * positions
                        _add_flat_rows(
                            source, target, row, first, top, offset, lo, hi, oh, dx.shape
                        )
                        continue
                    for y in range(oh):
                        h = y * sh - front[0] + i * dilation[0]
                        if h < 0 or h >= height:
                            continue
                        read = uintp(r * total + b * positions + y * ow + lo)
                        out = first + uintp(h * width + lo * sw + offset)
                        if sw == 1:
                            for q in range(uintp(hi - lo)):
                                target[out + q] += source[read + q]
                        else:
                            step = uintp(sw)
                            for q in range(uintp(hi - lo)):
                                target[out + q * step] += source[read + q]


@njit(cache=True, nogil=True)
def depthwise_forward(
    x: Any,
    taps: Any,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    front: tuple[int, int],
    y: Any,
    start: int,
    stop: int,
) -> None:
    """One input channel per group: overwrite images ``start:stop`` of a C-contiguous
    ``y`` ``(n, O, OH, OW)`` with the windows of ``x`` ``(n, G, H, W)`` weighted by
    ``taps`` ``(O, kh, kw)`` (output channel ``o`` reads input channel ``o // (O / G)``)."""
    _, groups, height, width = x.shape
    _, out_channels, oh, ow = y.shape
    _, kh, kw = taps.shape
    multiplier = out_channels // groups
    sh, sw = stride
    source, target, weights = x.reshape(-1), y.reshape(-1), taps.reshape(-1)
    for b in range(start, stop):
        for o in range(out_channels):
            plane_out = uintp((b * out_channels + o) * oh * ow)
            for q in range(uintp(oh * ow)):
                target[plane_out + q] = 0
            plane_in = (b * groups + o // multiplier) * height * width
            for i in range(kh):
                for j in range(kw):
                    tap = weights[(o * kh + i) * kw + j]
                    offset = j * dilation[1] - front[1]
                    lo, hi = _inside(offset, sw, ow, width)
                    if hi <= lo:
                        continue
                    for r in range(oh):
                        h = r * sh - front[0] + i * dilation[0]
                        if h < 0 or h >= height:
                            continue
                        out = plane_out + uintp(r * ow + lo)
                        read = uintp(plane_in + h * width + lo * sw + offset)
                        if sw == 1:
                            for q in range(uintp(hi - lo)):
                                target[out + q] += tap * source[read + q]
                        else:
                            step = uintp(sw)
                            for q in range(uintp(hi - lo)):
                                target[out + q] += tap * source[read + q * step]


@njit(cache=True, nogil=True)
def depthwise_input_grad(
    dy: Any,
    taps: Any,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    front: tuple[int, int],
    dx: Any,
    start: int,
    stop: int,
) -> None:
    """The adjoint of :func:`depthwise_forward` in ``x``: overwrite images ``start:stop`` of a
    C-contiguous ``dx`` ``(n, G, H, W)`` from ``dy`` ``(n, O, OH, OW)``."""
    _, groups, height, width = dx.shape
    _, out_channels, oh, ow = dy.shape
    _, kh, kw = taps.shape
    multiplier = out_channels // groups
    sh, sw = stride
    source, target, weights = dy.reshape(-1), dx.reshape(-1), taps.reshape(-1)
    for b in range(start, stop):
        for g in range(groups):
            plane_in = uintp((b * groups + g) * height * width)
            for q in range(uintp(height * width)):
                target[plane_in + q] = 0
            for o in range(g * multiplier, (g + 1) * multiplier):
                plane_out = (b * out_channels + o) * oh * ow
                for i in range(kh):
                    for j in range(kw):
                        tap = weights[(o * kh + i) * kw + j]
                        offset = j * dilation[1] - front[1]
                        lo, hi = _inside(offset, sw, ow, width)
                        if hi <= lo:
                            continue
                        for r in range(oh):
                            h = r * sh - front[0] + i * dilation[0]
                            if h < 0 or h >= height:
                                continue
                            read = uintp(plane_out + r * ow + lo)
                            out = plane_in + uintp(h * width + lo * sw + offset)
                            if sw == 1:
                                for q in range(uintp(hi - lo)):
                                    target[out + q] += tap * source[read + q]
                            else:
                                step = uintp(sw)
                                for q in range(uintp(hi - lo)):
                                    target[out + q * step] += tap * source[read + q]


@njit(cache=True, nogil=True)
def depthwise_weight_grad(
    x: Any,
    dy: Any,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    front: tuple[int, int],
    dtaps: Any,
    start: int,
    stop: int,
) -> None:
    """The adjoint of :func:`depthwise_forward` in the taps: write output channels
    ``start:stop`` of a C-contiguous ``dtaps`` ``(O, kh, kw)``, each a sum over the batch and the
    output positions, accumulated in float64."""
    n, groups, height, width = x.shape
    _, out_channels, oh, ow = dy.shape
    _, kh, kw = dtaps.shape
    multiplier = out_channels // groups
    sh, sw = stride
    image, grad, target = x.reshape(-1), dy.reshape(-1), dtaps.reshape(-1)
    for o in range(start, stop):
        for i in range(kh):
            for j in range(kw):
                offset = j * dilation[1] - front[1]
                lo, hi = _inside(offset, sw, ow, width)
                total = 0.0
                for b in range(n if hi > lo else 0):
                    plane_in = (b * groups + o // multiplier) * height * width
                    plane_out = (b * out_channels + o) * oh * ow
                    for r in range(oh):
                        h = r * sh - front[0] + i * dilation[0]
                        if h < 0 or h >= height:
                            continue
                        read_dy = uintp(plane_out + r * ow + lo)
                        read_x = uintp(plane_in + h * width + lo * sw + offset)
                        step = uintp(sw)
                        for q in range(uintp(hi - lo)):
                            total += grad[read_dy + q] * image[read_x + q * step]
                target[(o * kh + i) * kw + j] = total


@njit(cache=True, nogil=True)
def lay_out_biased(product: Any, bias: Any, y: Any, start: int, stop: int) -> None:
    """Write images ``start:stop`` of a C-contiguous ``y`` ``(n, O, OH, OW)`` from the
    channel-major GEMM product ``(O, n * OH * OW)`` (any strides) plus ``bias`` ``(O,)``:
    the layout copy and the bias in one pass."""
    _, out_channels, oh, ow = y.shape
    positions = oh * ow
    target = y.reshape(-1)
    for b in range(start, stop):
        for o in range(out_channels):
            shift = bias[o]
            first = uintp((b * out_channels + o) * positions)
            read = uintp(b * positions)
            row = uintp(o)
            for q in range(uintp(positions)):
                target[first + q] = product[row, read + q] + shift


@njit(cache=True, nogil=True)
def _pad_image(x: Any, b: int, front: tuple[int, int], padded: Any) -> None:
    """Copy image ``b`` of ``x`` ``(n, C, H, W)`` into ``padded`` ``(C, H', W')`` at
    ``front`` (its margins stay as they are: zero)."""
    _, channels, height, width = x.shape
    for c in range(channels):
        for h in range(height):
            for w in range(width):
                padded[c, front[0] + h, front[1] + w] = x[b, c, h, w]


@njit(cache=True, nogil=True)
def direct_forward(
    x: Any,
    weight: Any,
    bias: Any,
    front: tuple[int, int],
    y: Any,
    images: tuple[int, int],
    channels: tuple[int, int],
    padded: Any,
    row: Any,
) -> None:
    """A thin convolution (stride 1, no dilation, one group) computed directly: overwrite
    the ``images`` and output ``channels`` ranges of ``y`` ``(n, O, OH, OW)`` with the
    windows of ``x`` ``(n, C, H, W)`` weighted by ``weight`` ``(O, C, kh, kw)``, plus
    ``bias`` ``(O,)``. Each image is first copied into
    ``padded`` ``(C, H', W')``, this share's zeroed scratch plane, so that every window is
    whole and every row of taps a contiguous run the compiler vectorises; ``row`` ``(OW,)``
    is scratch too."""
    in_channels = x.shape[1]
    _, _, oh, ow = y.shape
    _, _, kh, kw = weight.shape
    for b in range(images[0], images[1]):
        _pad_image(x, b, front, padded)
        for o in range(channels[0], channels[1]):
            shift = bias[o]
            for r in range(oh):
                row[:] = 0
                for c in range(in_channels):
                    for i in range(kh):
                        for j in range(kw):
                            tap = weight[o, c, i, j]
                            for q in range(ow):
                                row[q] += tap * padded[c, r + i, q + j]
                for q in range(ow):
                    y[b, o, r, q] = row[q] + shift


@njit(cache=True, nogil=True)
def direct_weight_grad(
    x: Any,
    dy: Any,
    front: tuple[int, int],
    dweight: Any,
    start: int,
    stop: int,
    padded: Any,
    partial: Any,
) -> None:
    """The adjoint of :func:`direct_forward` in the weight: overwrite output channels
    ``start:stop`` of a float64 ``dweight`` ``(O, C, kh, kw)`` with each tap's sum over
    the batch and the output positions. One image's products accumulate per output column
    in ``partial`` ``(stop - start, C, kh, kw, OW)`` (zeroed scratch, the input's dtype),
    the images' sums in float64; ``padded`` is scratch as in :func:`direct_forward`."""
    n, in_channels = x.shape[0], x.shape[1]
    _, _, oh, ow = dy.shape
    _, _, kh, kw = dweight.shape
    dweight[start:stop] = 0
    for b in range(n):
        _pad_image(x, b, front, padded)
        for o in range(start, stop):
            for r in range(oh):
                for c in range(in_channels):
                    for i in range(kh):
                        for j in range(kw):
                            for q in range(ow):
                                partial[o - start, c, i, j, q] += (
                                    dy[b, o, r, q] * padded[c, r + i, q + j]
                                )
        for o in range(start, stop):
            for c in range(in_channels):
                for i in range(kh):
                    for j in range(kw):
                        for q in range(ow):
                            dweight[o, c, i, j] += partial[o - start, c, i, j, q]
                            partial[o - start, c, i, j, q] = 0
