"""The column GEMM shared by the flat, strided, compiled and depthwise strategies.

The columns are channel-major, ``(groups, C/groups * kh * kw, n * positions)``, with the
batch inside the column axis, so one GEMM per group covers a whole chunk (BLAS is far faster
on one large product than on many small ones); the price is a transpose of the (small) input
and output instead of the (large) columns.
"""

from __future__ import annotations

import math
from typing import Any

from ...config import get_workspace_bytes
from . import _compiled, _flat, _strided
from ._plan import ConvPlan, chunks, concat_chunks, itemsize, sum_chunks

__all__ = ["columns", "forward", "product_of", "temporaries_per_image", "weight_grad"]


# Output channels per group below which the forward GEMM is computed transposed (measured:
# 6 channels 2x faster transposed, 16 and more 1.2x to 1.3x slower).
THIN_OUTPUT = 12


def columns(plan: ConvPlan, x: Any) -> Any:
    """im2col of a batched chunk: compiled where the plan says so, flat shifts where the
    plan is flat, else strided slices."""
    if plan.strategy == "compiled":
        return _compiled.columns(plan, x)
    return _flat.columns(plan, x) if plan.flat else _strided.columns(plan, x)


def _to_nchw(plan: ConvPlan, y: Any) -> Any:
    """``(O, n, positions)`` to ``(n, O, OH, OW)``, dropping the flat layout's wrapped
    positions."""
    xp = plan.xp
    oh, ow = plan.out_size
    y = xp.reshape(y, (y.shape[0], y.shape[1], oh, plan.row))
    if plan.row != ow:
        y = y[..., :ow]
    return xp.permute_dims(y, (1, 0, 2, 3))


def temporaries_per_image(plan: ConvPlan) -> int:
    """Temporaries per image of the forward pass and the weight gradient (which reuses the
    forward's chunks, to line up with its kept columns): its columns and its rows of the
    product, or of the cotangent's two channel-major copies."""
    return (plan.groups * plan.patch + 2 * plan.out_channels) * plan.positions


def product_of(plan: ConvPlan, cols: Any, kernels: Any) -> Any:
    """``kernels @ cols``: ``(groups, O / groups, n * positions)``, possibly a transposed
    view."""
    xp = plan.xp
    if plan.out_channels // plan.groups < THIN_OUTPUT:
        # (columns^T @ W^T)^T: OpenBLAS runs a GEMM with few rows (here, output channels)
        # far below its rate, and the transposed product has few columns instead (LeNet's
        # first layer, 6 channels: 2x faster).
        return xp.matrix_transpose(xp.matrix_transpose(cols) @ xp.matrix_transpose(kernels))
    return kernels @ cols


def forward(plan: ConvPlan, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
    """The convolution of a batched ``x`` without bias, chunk by chunk.

    With ``keep``, on a launch-bound device, also returns the chunks' columns when they fit
    half the workspace budget together (the weight gradient reuses them instead of
    spending launches on rebuilding them), else ``None``. On a CPU the weight gradient
    rebuilds each chunk's columns: held until the backward pass, every chunk's columns
    take fresh memory, and the page faults of that memory cost more than building them
    again into a chunk just freed, which is still in cache for its GEMM (measured: 3x3
    convs at batch 64, forward and backward, 32 channels at 28 px 58 -> 44 ms, at stride 2
    23 -> 18 ms; a ResNet-20 step at batch 128 1025 -> 890 ms).
    """
    kernels = _flat.kernels(plan, weight)
    total = plan.batch * plan.groups * plan.patch * plan.positions * itemsize(plan, x)
    fits = 2 * total <= get_workspace_bytes()
    saved: list[Any] | None = [] if keep and plan.profile.launch_bound and fits else None

    def chunk(start: int, stop: int) -> Any:
        cols = columns(plan, x[start:stop, ...])
        product = product_of(plan, cols, kernels)
        if saved is not None:
            saved.append(cols)
        y = plan.xp.reshape(product, (plan.out_channels, stop - start, plan.positions))
        return _to_nchw(plan, y)

    return concat_chunks(plan, x, temporaries_per_image(plan), chunk), saved


def weight_grad(plan: ConvPlan, x: Any, dy: Any, saved: Any) -> Any:
    """dW = dY @ columns^T, chunk by chunk, with the forward's columns if it kept them."""
    xp = plan.xp
    per_image = temporaries_per_image(plan)  # the forward's chunks, so its kept columns line up
    ranges = chunks(plan, x, per_image)

    def part(start: int, stop: int) -> Any:
        cols = saved[ranges.index((start, stop))] if saved is not None else None
        if cols is None:
            cols = columns(plan, x[start:stop, ...])
        dy_cm = _flat.flat_cotangent(plan, dy[start:stop, ...], channel_major=True)
        dy_cm = xp.reshape(
            dy_cm, (plan.groups, plan.out_channels // plan.groups, math.prod(dy_cm.shape[1:]))
        )
        # (columns @ dY^T)^T: the same product, 1.15x to 1.5x faster in OpenBLAS than
        # dY @ columns^T (measured 3x3 at 32 to 128 channels, LeNet's 5x5 layers).
        return xp.matrix_transpose(cols @ xp.matrix_transpose(dy_cm))

    dweight = sum_chunks(plan, x, per_image, part)
    return xp.reshape(dweight, (plan.out_channels, -1, *plan.kernel))
