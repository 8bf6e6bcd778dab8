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

from typing import Any

from ...config import get_workspace_bytes
from .._constants import cached_constant
from ._plan import ConvPlan, chunks, concat_chunks, itemsize, sum_chunks

__all__ = ["forward", "input_grad", "weight_grad"]


def _axis_reads(
    size: int, out: int, kernel: int, stride: int, dilation: int, pad: int
) -> list[tuple[int, int]]:
    """Per (kernel offset, output position) along one axis, as ``k * out + o`` order: the
    input position read (or -1 in the padding)."""
    reads = []
    for k in range(kernel):
        for o in range(out):
            position = o * stride + k * dilation - pad
            reads.append((position if 0 <= position < size else -1, k * out + o))
    return reads


def _tables(plan: ConvPlan, like: Any, transposed: bool) -> tuple[Any, Any]:
    """The gather index of the columns (or, ``transposed``, of the input gradient) and
    its validity mask (``None`` when every entry is valid), cached per shape and device.

    Built from per-axis terms (a few hundred Python ints) broadcast on the device, so a
    table of millions of entries costs a handful of operations, once.
    """
    height = plan.padded[0] - plan.pads[0] - plan.pads[1]
    width = plan.padded[1] - plan.pads[2] - plan.pads[3]
    key = ("conv2d gather", transposed, plan.in_channels, height, width, plan.kernel,
           plan.stride, plan.dilation, plan.pads)  # fmt: skip

    def build(xp: Any, device: Any) -> tuple[Any, Any]:
        rows = _axis_reads(height, plan.out_size[0], plan.kernel[0], plan.stride[0],
                           plan.dilation[0], plan.pads[0])  # fmt: skip
        cols = _axis_reads(width, plan.out_size[1], plan.kernel[1], plan.stride[1],
                           plan.dilation[1], plan.pads[2])  # fmt: skip
        tables = (
            _transposed(plan, rows, cols, height, width)
            if transposed
            else _forward_terms(plan, rows, cols, width)
        )
        (row_term, row_ok), (col_term, col_ok), channel_stride, shape = tables

        def put(values: list[int] | list[bool], dtype: Any, axes: tuple[int, ...]) -> Any:
            return xp.reshape(xp.asarray(values, dtype=dtype, device=device), axes)

        channel = xp.arange(plan.in_channels, dtype=xp.int64, device=device) * channel_stride
        terms = xp.reshape(channel, shape[2]) + put(row_term, xp.int64, shape[0])
        # Entries in the padding read a valid (clipped) position and are masked out.
        index = xp.reshape(terms + put(col_term, xp.int64, shape[1]), (-1,))
        if all(row_ok) and all(col_ok):
            return index, None
        ok = put(row_ok, xp.bool, shape[0]) & put(col_ok, xp.bool, shape[1])
        valid = xp.broadcast_to(ok, (plan.in_channels, *tuple(ok.shape)[1:]))
        return index, xp.reshape(valid, (-1,))

    tables: tuple[Any, Any] = cached_constant(like, key, build)
    return tables


def _forward_terms(
    plan: ConvPlan, rows: list[tuple[int, int]], cols: list[tuple[int, int]], width: int
) -> tuple[Any, ...]:
    """Column ``(c, i, j, oh, ow)`` reads input ``c * H * W + h * W + w``: separable terms
    laid out ``(C, kh, kw, OH, OW)``."""
    row_term = [max(h, 0) * width for h, _ in rows]
    col_term = [max(w, 0) for w, _ in cols]
    (kh, kw), (oh, ow) = plan.kernel, plan.out_size
    height = plan.padded[0] - plan.pads[0] - plan.pads[1]
    shapes = ((1, kh, 1, oh, 1), (1, 1, kw, 1, ow), (-1, 1, 1, 1, 1))
    return (
        (row_term, [h >= 0 for h, _ in rows]),
        (col_term, [w >= 0 for w, _ in cols]),
        height * width,
        shapes,
    )


def _readers(reads: list[tuple[int, int]], size: int) -> list[list[int]]:
    """For each input position along one axis, the ``k * out + o`` entries that read it."""
    found: list[list[int]] = [[] for _ in range(size)]
    for position, entry in reads:
        if position >= 0:
            found[position].append(entry)
    return found


def _transposed(
    plan: ConvPlan,
    rows: list[tuple[int, int]],
    cols: list[tuple[int, int]],
    height: int,
    width: int,
) -> tuple[Any, ...]:
    """Input ``(c, h, w)`` collects the column gradients at ``(c, i, j, oh, ow)`` that read
    it: per axis at most ``Rh`` (``Rw``) readers, laid out ``(C, H, W, Rh, Rw)``, padded with
    masked entries."""
    (kh, kw), (oh, ow) = plan.kernel, plan.out_size
    positions = oh * ow
    by_row, by_col = _readers(rows, height), _readers(cols, width)
    most_rows = max(1, max(len(r) for r in by_row))
    most_cols = max(1, max(len(c) for c in by_col))
    row_term, row_ok, col_term, col_ok = [], [], [], []
    for readers in by_row:  # entry = i * OH + oh -> offset i * kw * P + oh * OW
        for r in range(most_rows):
            entry = readers[r] if r < len(readers) else -1
            row_ok.append(entry >= 0)
            i, o = divmod(max(entry, 0), oh)
            row_term.append(i * kw * positions + o * ow)
    for readers in by_col:  # entry = j * OW + ow -> offset j * P + ow
        for r in range(most_cols):
            entry = readers[r] if r < len(readers) else -1
            col_ok.append(entry >= 0)
            j, o = divmod(max(entry, 0), ow)
            col_term.append(j * positions + o)
    shapes = (
        (1, height, 1, most_rows, 1),
        (1, 1, width, 1, most_cols),
        (-1, 1, 1, 1, 1),
    )
    return (row_term, row_ok), (col_term, col_ok), kh * kw * positions, shapes


def _gathered(plan: ConvPlan, flat: Any, index: Any, valid: Any) -> Any:
    """``take`` along axis 1, with masked entries zero (never NaN from the clipped index)."""
    taken = plan.xp.take(flat, index, axis=1)
    return taken if valid is None else plan.xp.where(valid, taken, 0.0)


def _columns(plan: ConvPlan, x: Any) -> Any:
    """im2col of a batched chunk: ``(n, groups, C/groups * kh * kw, OH * OW)``."""
    xp = plan.xp
    n = x.shape[0]
    index, valid = _tables(plan, x, transposed=False)
    cols = _gathered(plan, xp.reshape(x, (n, -1)), index, valid)
    positions = plan.out_size[0] * plan.out_size[1]
    return xp.reshape(cols, (n, plan.groups, plan.patch, positions))


def _kernels(plan: ConvPlan, weight: Any) -> Any:
    return plan.xp.reshape(weight, (plan.groups, plan.out_channels // plan.groups, plan.patch))


def _per_image(plan: ConvPlan) -> int:
    return plan.groups * plan.patch * plan.out_size[0] * plan.out_size[1]


def forward(plan: ConvPlan, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
    """The convolution of a batched ``x`` without bias; with ``keep``, also the columns of
    each chunk for the weight gradient."""
    xp = plan.xp
    kernels = _kernels(plan, weight)
    total = plan.batch * _per_image(plan) * itemsize(plan, x)
    saved: list[Any] | None = [] if keep and 2 * total <= get_workspace_bytes() else None
    shape = (plan.out_channels, *plan.out_size)

    def chunk(start: int, stop: int) -> Any:
        cols = _columns(plan, x[start:stop, ...])
        if saved is not None:
            saved.append(cols)
        return xp.reshape(kernels @ cols, (stop - start, *shape))

    return concat_chunks(plan, x, _per_image(plan), chunk), saved


def weight_grad(plan: ConvPlan, x: Any, dy: Any, saved: Any) -> Any:
    """dW: per image ``dY @ columns^T``, summed over the batch."""
    xp = plan.xp
    ranges = chunks(plan, x, _per_image(plan))
    per_out = plan.out_channels // plan.groups

    def part(start: int, stop: int) -> Any:
        cols = saved[ranges.index((start, stop))] if saved is not None else None
        if cols is None:
            cols = _columns(plan, x[start:stop, ...])
        dy4 = xp.reshape(dy[start:stop, ...], (stop - start, plan.groups, per_out, -1))
        return xp.sum(dy4 @ xp.matrix_transpose(cols), axis=0)

    dweight = sum_chunks(plan, x, _per_image(plan), part)
    return xp.reshape(dweight, (plan.out_channels, -1, *plan.kernel))


def input_grad(plan: ConvPlan, weight: Any, dy: Any) -> Any:
    """dX: the column gradients ``W^T @ dY``, gathered back per input element and summed."""
    xp = plan.xp
    index, valid = _tables(plan, dy, transposed=True)
    height = plan.padded[0] - plan.pads[0] - plan.pads[1]
    width = plan.padded[1] - plan.pads[2] - plan.pads[3]
    readers = index.shape[0] // (plan.in_channels * height * width)
    kernels_t = xp.matrix_transpose(_kernels(plan, weight))
    per_out = plan.out_channels // plan.groups

    def chunk(start: int, stop: int) -> Any:
        n = stop - start
        dy4 = xp.reshape(dy[start:stop, ...], (n, plan.groups, per_out, -1))
        dcols = xp.reshape(kernels_t @ dy4, (n, -1))
        spread = _gathered(plan, dcols, index, valid)
        spread = xp.reshape(spread, (n, plan.in_channels, height, width, readers))
        return xp.sum(spread, axis=-1)

    per_image = _per_image(plan) + plan.in_channels * height * width * readers
    return concat_chunks(plan, dy, per_image, chunk)
