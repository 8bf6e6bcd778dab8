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

from typing import Any

from .. import _numba
from . import _depthwise, _flat, _gemm, _strided
from ._plan import ConvPlan, chunks, concat_chunks

__all__ = [
    "applies",
    "columns",
    "depthwise_forward",
    "depthwise_input_grad",
    "depthwise_weight_grad",
    "direct_forward",
    "direct_forward_biased",
    "direct_weight_grad",
    "forward_biased",
    "input_grad",
]


_KERNELS = f"{__package__}._compiled_kernels"


def _kernels() -> Any:
    return _numba.load(_KERNELS)


def applies(plan: ConvPlan) -> bool:
    """Whether this plan's convolution may take the compiled kernels (NumPy with Numba,
    :func:`xpnet.config.native_kernels` on); other dtypes than float32 and float64 fall
    back inside each pass."""
    return _numba.applies(plan.xp, kernels=_KERNELS)


def _front(plan: ConvPlan) -> tuple[int, int]:
    return plan.pads[0], plan.pads[2]


def columns(plan: ConvPlan, x: Any) -> Any:
    """im2col of a batched chunk, channel-major: ``(groups, C/groups * kh * kw, n * OH *
    OW)``, the layout of :func:`._strided.columns` (which it falls back to for other
    dtypes)."""
    if not _numba.compilable(x):
        return _strided.columns(plan, x)
    xp = plan.xp
    n = x.shape[0]
    kk = plan.kernel[0] * plan.kernel[1]
    cols = xp.empty((plan.in_channels * kk, n * plan.positions), dtype=x.dtype)
    x = _numba.contiguous(xp, x)  # the kernels index flat arrays
    args = (x, plan.kernel, plan.stride, plan.dilation, _front(plan), plan.out_size, cols)
    _numba.run_shared(_kernels().im2col, args, _numba.shares(int(cols.shape[0]), int(cols.size)))
    return xp.reshape(cols, (plan.groups, plan.patch, n * plan.positions))


def forward_biased(plan: ConvPlan, x: Any, weight: Any, bias: Any) -> Any:
    """The convolution of a batched ``x`` plus ``bias``, chunk by chunk: each chunk's GEMM
    product laid out as ``(N, O, OH, OW)`` with the bias added by one compiled pass,
    straight into the result (the standard path copies the product into place, then adds
    the bias in a second pass)."""
    xp = plan.xp
    kernels = _flat.kernels(plan, weight)
    y = xp.empty((plan.batch, plan.out_channels, *plan.out_size), dtype=x.dtype)
    shift = _numba.contiguous(xp, bias)
    for start, stop in chunks(plan, x, _gemm.temporaries_per_image(plan)):
        product = _gemm.product_of(plan, columns(plan, x[start:stop, ...]), kernels)
        product = xp.reshape(product, (plan.out_channels, (stop - start) * plan.positions))
        parts = _numba.shares(stop - start, int(product.size))
        kernel = _kernels().lay_out_biased
        _numba.run_shared(kernel, (product, shift, y[start:stop, ...]), parts)
    return y


def input_grad(plan: ConvPlan, weight: Any, dy: Any) -> Any:
    """dX: the columns' gradient ``W^T @ dY``, folded back onto the input by the compiled
    col2im (the strided strategy's fold for other dtypes)."""
    if not _numba.compilable(dy):
        return _strided.input_grad(plan, weight, dy)
    xp = plan.xp
    kk = plan.kernel[0] * plan.kernel[1]
    oh, ow = plan.out_size
    height, width = plan.size
    kernels_t = xp.matrix_transpose(_flat.kernels(plan, weight))

    def chunk(start: int, stop: int) -> Any:
        m = stop - start
        dcols = _strided.column_grad(plan, kernels_t, dy[start:stop, ...])
        dcols = xp.reshape(dcols, (plan.in_channels * kk, m * oh * ow))
        # A chunk-sized result, copied into the whole one: measured faster than folding
        # straight into the whole result (3x3, 32 channels at 28 px: 11 ms against 14).
        dx = xp.empty((m, plan.in_channels, height, width), dtype=dy.dtype)
        args = (dcols, plan.kernel, plan.stride, plan.dilation, _front(plan), plan.out_size, dx)
        shares = _images_or_channels(m, plan.in_channels, int(dcols.size))
        _numba.run_shared(_kernels().col2im, args, shares)
        return dx

    # Per image: the cotangent's channel-major copy, the column gradient and the input's.
    per_image = (plan.out_channels + plan.groups * plan.patch) * plan.positions
    return concat_chunks(plan, dy, per_image + plan.in_channels * height * width, chunk)


def _images_or_channels(
    images: int, channels: int, elements: int
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``(images, channels)`` ranges, one per thread: by images where there are enough for
    every thread (each then writes one run of memory), else by channels."""
    if images >= _numba.threads():
        return [(part, (0, channels)) for part in _numba.shares(images, elements)]
    return [((0, images), part) for part in _numba.shares(channels, elements)]


def _taps(plan: ConvPlan, weight: Any) -> Any:
    """The depthwise weight ``(O, 1, kh, kw)`` as C-contiguous ``(O, kh, kw)``."""
    return _numba.contiguous(plan.xp, weight, (plan.out_channels, *plan.kernel))


def depthwise_forward(plan: ConvPlan, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
    """One input channel per group, directly: each output plane the sum over the kernel
    offsets of a tap times a window of its input plane (the column GEMM of
    :mod:`._gemm` for other dtypes)."""
    if not _numba.compilable(x):
        return _gemm.forward(plan, x, weight, keep)
    x = _numba.contiguous(plan.xp, x)
    y = plan.xp.empty((plan.batch, plan.out_channels, *plan.out_size), dtype=x.dtype)
    args = (x, _taps(plan, weight), plan.stride, plan.dilation, _front(plan), y)
    _numba.run_shared(_kernels().depthwise_forward, args, _numba.shares(plan.batch, int(y.size)))
    return y, None


def depthwise_input_grad(plan: ConvPlan, weight: Any, dy: Any) -> Any:
    """dX of a depthwise convolution, directly (the standard pullback for other dtypes)."""
    if not _numba.compilable(dy):
        return _depthwise.input_grad(plan, weight, dy)
    dy = _numba.contiguous(plan.xp, dy)
    height, width = plan.size
    dx = plan.xp.empty((plan.batch, plan.in_channels, height, width), dtype=dy.dtype)
    args = (dy, _taps(plan, weight), plan.stride, plan.dilation, _front(plan), dx)
    _numba.run_shared(
        _kernels().depthwise_input_grad, args, _numba.shares(plan.batch, int(dy.size))
    )
    return dx


def depthwise_weight_grad(plan: ConvPlan, x: Any, dy: Any, saved: Any) -> Any:
    """dW of a depthwise convolution, directly, one output channel per share (the standard
    pullback for other dtypes)."""
    if not _numba.compilable(dy):
        return _depthwise.weight_grad(plan, x, dy, saved)
    x, dy = _numba.contiguous(plan.xp, x), _numba.contiguous(plan.xp, dy)
    dtaps = plan.xp.empty((plan.out_channels, *plan.kernel), dtype=dy.dtype)
    args = (x, dy, plan.stride, plan.dilation, _front(plan), dtaps)
    shares = _numba.shares(plan.out_channels, int(dy.size))
    _numba.run_shared(_kernels().depthwise_weight_grad, args, shares)
    return plan.xp.reshape(dtaps, (plan.out_channels, 1, *plan.kernel))


def direct_forward_biased(plan: ConvPlan, x: Any, weight: Any, bias: Any) -> Any:
    """A thin convolution (the ``"compiled_direct"`` strategy: see :func:`._plan.choose`)
    plus ``bias`` (or ``None``), straight from the input: no columns. By images where there
    are enough for every thread, else by output channels."""
    xp = plan.xp
    x = _numba.contiguous(xp, x)
    y = xp.empty((plan.batch, plan.out_channels, *plan.out_size), dtype=x.dtype)
    parts = [
        (*share, xp.zeros((plan.in_channels, *plan.padded), dtype=x.dtype),
         xp.empty((plan.out_size[1],), dtype=x.dtype))
        for share in _images_or_channels(plan.batch, plan.out_channels, int(y.size))
    ]  # fmt: skip
    shift = (
        xp.zeros((plan.out_channels,), dtype=x.dtype) if bias is None
        else _numba.contiguous(xp, bias)
    )  # fmt: skip
    weight = _numba.contiguous(xp, weight)
    _numba.run_shared(_kernels().direct_forward, (x, weight, shift, _front(plan), y), parts)
    return y


def direct_forward(plan: ConvPlan, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
    """:func:`direct_forward_biased` without a bias (the column GEMM of :mod:`._gemm` for
    other dtypes); nothing is kept: the weight gradient reads the input."""
    if not _numba.compilable(x):
        return _gemm.forward(plan, x, weight, keep)
    return direct_forward_biased(plan, x, weight, None), None


def direct_weight_grad(plan: ConvPlan, x: Any, dy: Any, saved: Any) -> Any:
    """dW of a thin convolution, straight from the input and the cotangent, by output
    channels (the column GEMM of :mod:`._gemm` for other dtypes)."""
    if not _numba.compilable(dy):
        return _gemm.weight_grad(plan, x, dy, saved)
    xp = plan.xp
    x, dy = _numba.contiguous(xp, x), _numba.contiguous(xp, dy)
    shape = (plan.out_channels, plan.in_channels, *plan.kernel)
    dweight = xp.empty(shape, dtype=xp.float64)
    parts = [
        (start, stop, xp.zeros((plan.in_channels, *plan.padded), dtype=x.dtype),
         xp.zeros((stop - start, *shape[1:], plan.out_size[1]), dtype=x.dtype))
        for start, stop in _numba.shares(plan.out_channels, int(dy.size))
    ]  # fmt: skip
    _numba.run_shared(_kernels().direct_weight_grad, (x, dy, _front(plan), dweight), parts)
    return xp.astype(dweight, dy.dtype)
