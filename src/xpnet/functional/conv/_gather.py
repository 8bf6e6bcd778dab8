"""The gather strategy: im2col as one ``take`` with a cached index, col2im as its transpose.

Every window element of a batch of images flattened to ``(n, C * H * W)`` is one entry of a
fixed index (per shape), so the columns are one gather, and a padded position one masked
entry. The adjoint needs no scatter: each input element is read by at most ``R`` window
positions (``R = kh * kw`` at stride 1), so the input gradient gathers those ``R`` column
gradients for every element and sums them. A convolution's forward and backward then cost
a fixed handful of operations (11 launches for a padded 3x3 conv with bias) whatever the
kernel, stride or dilation, where the slice-based layouts need one or more per kernel
offset: the strategy for launch-bound devices (GPUs).

The products keep the batch as a leading (broadcast) axis, so the output comes out in NCHW
order with no transpose: ``(groups, O/g, C/g*kh*kw) @ (n, groups, C/g*kh*kw, OH*OW)``.
"""

from __future__ import annotations

import math
from typing import Any

from ...config import get_workspace_bytes
from .._constants import cached_constant
from ._plan import ConvPlan, chunks, concat_chunks, itemsize, sum_chunks

__all__ = ["forward", "input_grad", "weight_grad"]


def _axis_reads(
    size: int, out: int, kernel: int, stride: int, dilation: int, pad: int
) -> list[tuple[int, int, int]]:
    """Along one axis, for each output position ``o`` and kernel offset ``k`` (``o`` outer):
    ``(input position read or -1 in the padding, k, o)``."""
    reads = []
    for o in range(out):
        for k in range(kernel):
            position = o * stride + k * dilation - pad
            reads.append((position if 0 <= position < size else -1, k, o))
    return reads


def _tables(plan: ConvPlan, like: Any, transposed: bool) -> tuple[Any, Any]:
    """The gather index of the columns (or, ``transposed``, of the input gradient) and
    its validity mask (``None`` when every entry is valid), cached per shape and device.

    Built from per-axis terms (a few hundred Python ints) broadcast on the device, so a
    table of millions of entries costs a handful of operations, once.
    """
    height, width = plan.size
    key = ("conv2d gather", transposed, plan.in_channels, height, width, plan.kernel,
           plan.stride, plan.dilation, plan.pads)  # fmt: skip

    def build(xp: Any, device: Any) -> tuple[Any, Any]:
        rows = _axis_reads(height, plan.out_size[0], plan.kernel[0], plan.stride[0],
                           plan.dilation[0], plan.pads[0])  # fmt: skip
        cols = _axis_reads(width, plan.out_size[1], plan.kernel[1], plan.stride[1],
                           plan.dilation[1], plan.pads[2])  # fmt: skip
        terms = _transposed if transposed else _forward
        (row_term, row_ok), (col_term, col_ok), channel_stride, shape = terms(
            plan, rows, cols, height, width
        )

        def put(values: list[int] | list[bool], dtype: Any, axes: tuple[int, ...]) -> Any:
            return xp.reshape(xp.asarray(values, dtype=dtype, device=device), axes)

        channel = xp.arange(plan.in_channels, dtype=xp.int64, device=device) * channel_stride
        terms = xp.reshape(channel, shape[2]) + put(row_term, xp.int64, shape[0])
        # Entries in the padding read a valid (clipped) position and are masked out.
        index = terms + put(col_term, xp.int64, shape[1])
        flat_index = xp.reshape(index, (-1,))
        if all(row_ok) and all(col_ok):
            return flat_index, None
        ok = put(row_ok, xp.bool, shape[0]) & put(col_ok, xp.bool, shape[1])
        return flat_index, xp.reshape(xp.broadcast_to(ok, tuple(index.shape)), (-1,))

    tables: tuple[Any, Any] = cached_constant(like, key, build)
    return tables


def _forward(
    plan: ConvPlan,
    rows: list[tuple[int, int, int]],
    cols: list[tuple[int, int, int]],
    height: int,
    width: int,
) -> tuple[Any, ...]:
    """Column ``(oh, ow, c, i, j)`` (position-major) reads input ``c * H * W + h * W + w``:
    separable terms laid out ``(OH, OW, C, kh, kw)``."""
    (kh, kw), (oh, ow) = plan.kernel, plan.out_size
    shapes = ((oh, 1, 1, kh, 1), (1, ow, 1, 1, kw), (1, 1, -1, 1, 1))
    return (
        ([max(h, 0) * width for h, _, _ in rows], [h >= 0 for h, _, _ in rows]),
        ([max(w, 0) for w, _, _ in cols], [w >= 0 for w, _, _ in cols]),
        height * width,
        shapes,
    )


def _readers(reads: list[tuple[int, int, int]], size: int) -> list[list[tuple[int, int]]]:
    """For each input position along one axis, the ``(k, o)`` window entries that read it."""
    found: list[list[tuple[int, int]]] = [[] for _ in range(size)]
    for position, k, o in reads:
        if position >= 0:
            found[position].append((k, o))
    return found


def _transposed(
    plan: ConvPlan,
    rows: list[tuple[int, int, int]],
    cols: list[tuple[int, int, int]],
    height: int,
    width: int,
) -> tuple[Any, ...]:
    """Input ``(c, h, w)`` collects the column gradients at ``(oh, ow, c, i, j)`` that read
    it: per axis at most ``Rh`` (``Rw``) readers, laid out ``(C, H, W, Rh, Rw)``, padded with
    masked entries."""
    (kh, kw), ow = plan.kernel, plan.out_size[1]
    patch = plan.in_channels * kh * kw  # one position's columns
    by_row, by_col = _readers(rows, height), _readers(cols, width)
    most_rows = max(1, max(len(r) for r in by_row))
    most_cols = max(1, max(len(c) for c in by_col))
    row_term, row_ok, col_term, col_ok = [], [], [], []
    for readers in by_row:  # (i, oh) -> oh * OW * K + i * kw
        for r in range(most_rows):
            i, o = readers[r] if r < len(readers) else (0, 0)
            row_ok.append(r < len(readers))
            row_term.append(o * ow * patch + i * kw)
    for readers in by_col:  # (j, ow) -> ow * K + j
        for r in range(most_cols):
            j, o = readers[r] if r < len(readers) else (0, 0)
            col_ok.append(r < len(readers))
            col_term.append(o * patch + j)
    shapes = ((1, height, 1, most_rows, 1), (1, 1, width, 1, most_cols), (-1, 1, 1, 1, 1))
    return (row_term, row_ok), (col_term, col_ok), kh * kw, shapes


def _gathered(plan: ConvPlan, flat: Any, index: Any, valid: Any) -> Any:
    """``take`` along axis 1, with masked entries zero (never NaN from the clipped index)."""
    taken = plan.xp.take(flat, index, axis=1)
    return taken if valid is None else plan.xp.where(valid, taken, 0.0)


def _positions(plan: ConvPlan) -> int:
    return plan.out_size[0] * plan.out_size[1]


def _columns(plan: ConvPlan, x: Any) -> Any:
    """im2col of a batched chunk, position-major: ``(n, OH * OW, C * kh * kw)``."""
    xp = plan.xp
    n = x.shape[0]
    index, valid = _tables(plan, x, transposed=False)
    cols = _gathered(plan, xp.reshape(x, (n, math.prod(x.shape[1:]))), index, valid)
    return xp.reshape(cols, (n, _positions(plan), plan.groups * plan.patch))


def _by_group(plan: ConvPlan, cols: Any) -> Any:
    """``(n, P, C * kh * kw)`` columns as ``(n, groups, P, C/groups * kh * kw)``."""
    xp = plan.xp
    n, positions = cols.shape[0], cols.shape[1]
    return xp.permute_dims(xp.reshape(cols, (n, positions, plan.groups, plan.patch)), (0, 2, 1, 3))


def _per_image(plan: ConvPlan) -> int:
    """Temporaries per image of the forward pass and the weight gradient: its columns
    (twice: the gather and its masked copy) and its rows of the product or cotangent."""
    return (2 * plan.groups * plan.patch + 2 * plan.out_channels) * _positions(plan)


def forward(plan: ConvPlan, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
    """The convolution of a batched ``x`` without bias; with ``keep``, also the columns of
    each chunk for the weight gradient.

    One group: a single 2-D GEMM ``(n * P, K) @ (K, O)`` (no broadcasting, which would
    cost GPU libraries pointer-table kernels), read back as NCHW through a transposed view.
    """
    xp = plan.xp
    total = plan.batch * plan.groups * plan.patch * _positions(plan) * itemsize(plan, x)
    saved: list[Any] | None = [] if keep and 2 * total <= get_workspace_bytes() else None
    oh, ow = plan.out_size
    kernels = xp.reshape(weight, (plan.groups, plan.out_channels // plan.groups, plan.patch))

    def chunk(start: int, stop: int) -> Any:
        n = stop - start
        cols = _columns(plan, x[start:stop, ...])
        if saved is not None:
            saved.append(cols)
        if plan.groups == 1:
            product = xp.reshape(cols, (-1, plan.patch)) @ xp.matrix_transpose(kernels[0, ...])
            return xp.permute_dims(
                xp.reshape(product, (n, oh, ow, plan.out_channels)), (0, 3, 1, 2)
            )
        product = _by_group(plan, cols) @ xp.matrix_transpose(kernels)  # (n, G, P, O/G)
        product = xp.permute_dims(product, (0, 1, 3, 2))
        return xp.reshape(product, (n, plan.out_channels, oh, ow))

    return concat_chunks(plan, x, _per_image(plan), chunk), saved


def cotangent(plan: ConvPlan, dy: Any) -> Any:
    """The output's cotangent laid out for the pullback's products.

    One group: ``(n * P, O)``, one copy shared by both gradients when the batch is one
    chunk (on a GPU, always), else left as it is and laid out chunk by chunk (a whole-batch
    copy would not fit the workspace). Several groups: ``(n, groups, O/groups, P)``, a view.
    """
    xp = plan.xp
    if plan.groups > 1:
        return xp.reshape(
            dy,
            (dy.shape[0], plan.groups, plan.out_channels // plan.groups, math.prod(dy.shape[2:])),
        )
    one_chunk = all(
        len(chunks(plan, dy, per_image)) == 1
        for per_image in (_per_image(plan), _input_grad_per_image(plan))
    )
    return _laid_out(plan, dy) if one_chunk else dy


def _laid_out(plan: ConvPlan, dy: Any) -> Any:
    """``(n, O, OH, OW)`` as ``(n * P, O)`` (a copy)."""
    permuted = plan.xp.permute_dims(dy, (0, 2, 3, 1))
    return plan.xp.reshape(permuted, (dy.shape[0] * _positions(plan), plan.out_channels))


def _rows(plan: ConvPlan, dy: Any, start: int, stop: int) -> Any:
    """Images ``start:stop`` of a cotangent from :func:`cotangent`, laid out."""
    if plan.groups > 1:
        return dy[start:stop, ...]
    if dy.ndim == 4:  # left for the chunks to lay out
        return _laid_out(plan, dy[start:stop, ...])
    positions = _positions(plan)
    return dy[start * positions : stop * positions, :]


def _input_grad_per_image(plan: ConvPlan) -> int:
    """Temporaries per image of :func:`input_grad`: the cotangent's rows, the column
    gradient then the gathered readers then their masked copy, and the summed result."""
    height, width = plan.size
    spread = _readers_per_element(plan) * plan.in_channels * height * width
    columns = plan.groups * plan.patch * _positions(plan)
    # The column gradient lives until the gather, the gather until its masked copy.
    return (
        plan.out_channels * _positions(plan)
        + max(columns + spread, 2 * spread)
        + plan.in_channels * height * width
    )


def _readers_per_element(plan: ConvPlan) -> int:
    """How many column positions read one input element, at most (``Rh * Rw``)."""
    most = 1
    for axis, pad in ((0, plan.pads[0]), (1, plan.pads[2])):
        size = plan.padded[axis] - plan.pads[2 * axis] - plan.pads[2 * axis + 1]
        reads = _axis_reads(size, plan.out_size[axis], plan.kernel[axis], plan.stride[axis],
                            plan.dilation[axis], pad)  # fmt: skip
        most *= max(1, max(len(r) for r in _readers(reads, size)))
    return most


def weight_grad(plan: ConvPlan, x: Any, dy: Any, saved: Any) -> Any:
    """dW: ``dY^T @ columns`` over every image and position (one group: one 2-D GEMM)."""
    xp = plan.xp
    ranges = chunks(plan, x, _per_image(plan))

    def part(start: int, stop: int) -> Any:
        cols = saved[ranges.index((start, stop))] if saved is not None else None
        if cols is None:
            cols = _columns(plan, x[start:stop, ...])
        g = _rows(plan, dy, start, stop)
        if plan.groups == 1:
            return xp.matrix_transpose(g) @ xp.reshape(cols, (-1, plan.patch))
        return xp.sum(g @ _by_group(plan, cols), axis=0)  # (G, O/G, C/G * kh * kw)

    dweight = sum_chunks(plan, x, _per_image(plan), part)
    return xp.reshape(dweight, (plan.out_channels, -1, *plan.kernel))


def input_grad(plan: ConvPlan, weight: Any, dy: Any) -> Any:
    """dX: the column gradients ``dY @ W``, gathered back per input element and summed."""
    xp = plan.xp
    index, valid = _tables(plan, dy, transposed=True)
    height, width = plan.size
    readers = index.shape[0] // (plan.in_channels * height * width)
    kernels = xp.reshape(weight, (plan.groups, plan.out_channels // plan.groups, plan.patch))

    def chunk(start: int, stop: int) -> Any:
        n, g = stop - start, _rows(plan, dy, start, stop)
        if plan.groups == 1:
            dcols = g @ kernels[0, ...]  # (n * P, K)
        else:
            dcols = xp.matrix_transpose(g) @ kernels  # (n, G, P, K / G)
            dcols = xp.permute_dims(dcols, (0, 2, 1, 3))
        per_image = _positions(plan) * plan.groups * plan.patch
        taken = xp.take(xp.reshape(dcols, (n, per_image)), index, axis=1)
        dcols = None  # released before the masked copy: the workspace counts on it
        spread = taken if valid is None else xp.where(valid, taken, 0.0)
        taken = None
        spread = xp.reshape(spread, (n, plan.in_channels, height, width, readers))
        return xp.sum(spread, axis=-1)

    return concat_chunks(plan, dy, _input_grad_per_image(plan), chunk)
