"""A 2-D convolution's plan: its strategy chosen, and the batch cut into chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import array_api_compat

from ...backends import DeviceProfile
from ...config import get_conv_strategy, get_workspace_bytes
from .._validation import is_lazy
from ._geometry import ConvGeometry, check_conv

__all__ = [
    "ConvPlan",
    "applicable",
    "choose",
    "chunks",
    "itemsize",
    "plan",
    "plan_of",
    "sum_chunks",
    "thin",
]

# Flat columns compute ``Wp - OW`` wrapped positions per output row and throw them away;
# at stride 1 worth it while they add at most 1/3 to the work (measured 3x3, forward and
# backward, with the columns rebuilt for the weight gradient: at 6-16 pixels, where they
# add 12-33%, flat is as fast or up to 1.1x faster; at 4 pixels and 512 channels, 50%,
# the 2-D slices are 1.3x faster). At stride 2 the
# alternative copies every window with a stride-2 inner loop, and the polyphase flat
# layout wins up to 1/4 (measured 3x3, 64 channels, batch 64, forward + backward: at
# 28 px 1.7x faster, at 14 px 1.7x, at 7 px (1/4 wrapped) 1.4x).
MAX_WRAPPED_FRACTION = 3
MAX_WRAPPED_FRACTION_STRIDED = 4

# Where the compiled kernels run, a convolution with at most this many input times output
# channels (stride 1, no dilation, one group) is computed directly: its column GEMM does
# too few products per column element it writes and reads back to pay for them. Measured
# on NumPy, forward / weight gradient: LeNet-5's 1->6 5x5 layer at batch 256, 3.2 / 2.7 ms
# directly against 3.9 / 5.8 by columns; 3->8 3x3 at 32 px, batch 128, 1.8 / 2.4 against
# 3.2 / 4.1; but 1->32 3x3 at 28 px, batch 256, forward 5.8 against 4.5.
MAX_DIRECT_CHANNELS = 24


@dataclass(frozen=True)
class ConvPlan:
    """Everything the forward and backward passes need, checked once."""

    xp: Any
    profile: DeviceProfile
    unbatched: bool
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    padded: tuple[int, int]
    out_size: tuple[int, int]
    strategy: str = "strided"
    flat_anyway: bool = False  # flat layout even where the strategy would not use it

    @property
    def patch(self) -> int:
        """Length of one group's flattened receptive field, ``C/groups * kh * kw``."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]

    @property
    def flat(self) -> bool:
        """The flat layout: windows are shifts of the flattened image (or, for strides
        above 1, of its flattened phases). Depthwise uses it at stride 1 only."""
        if self.flat_anyway or self.strategy == "flat":
            return True
        return self.strategy == "depthwise" and self.stride == (1, 1)

    @property
    def size(self) -> tuple[int, int]:
        """Height and width of the (unpadded) input."""
        top, bottom, left, right = self.pads
        return self.padded[0] - top - bottom, self.padded[1] - left - right

    @property
    def phase_size(self) -> tuple[int, int]:
        """Height and width of one phase of the padded image (``padded[p::sh, q::sw]``),
        rounded up so that all phases are equal; the padded image itself at stride 1."""
        return (-(-self.padded[0] // self.stride[0]), -(-self.padded[1] // self.stride[1]))

    @property
    def depthwise(self) -> bool:
        """One input channel per group."""
        return self.in_channels == self.groups > 1

    @property
    def row_if_flat(self) -> int:
        """Column positions per output row in the flat layout: one phase's width."""
        return self.phase_size[1]

    @property
    def row(self) -> int:
        """Column positions per output row: a phase's width for flat columns, else OW."""
        return self.row_if_flat if self.flat else self.out_size[1]

    @property
    def positions(self) -> int:
        """Column positions per image."""
        return self.out_size[0] * self.row


def plan(
    x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any
) -> ConvPlan:
    """Check conv2d's arguments (each error names the argument) and choose its strategy."""
    return plan_of(check_conv(2, x, weight, bias, stride, padding, dilation, groups))


def plan_of(geometry: ConvGeometry) -> ConvPlan:
    """The 2-D plan of a checked 2-D geometry, with its strategy chosen."""
    (top, bottom), (left, right) = geometry.pads
    height, width = geometry.size
    checked = ConvPlan(
        xp=geometry.xp,
        profile=geometry.profile,
        unbatched=geometry.unbatched,
        batch=geometry.batch,
        in_channels=geometry.in_channels,
        out_channels=geometry.out_channels,
        groups=geometry.groups,
        kernel=(geometry.kernel[0], geometry.kernel[1]),
        stride=(geometry.stride[0], geometry.stride[1]),
        dilation=(geometry.dilation[0], geometry.dilation[1]),
        pads=(top, bottom, left, right),
        padded=(height + top + bottom, width + left + right),
        out_size=(geometry.out_size[0], geometry.out_size[1]),
    )
    return ConvPlan(**{**checked.__dict__, "strategy": choose(checked)})


def applicable(strategy: str, plan: ConvPlan) -> str | None:
    """Why ``strategy`` cannot compute this convolution, or ``None`` if it can."""
    if strategy == "depthwise" and not plan.depthwise:
        return (
            f"needs one input channel per group, got {plan.in_channels} channels in "
            f"{plan.groups} group(s)"
        )
    return None


def choose(plan: ConvPlan) -> str:
    """The strategy for this convolution: forced by :func:`xpnet.config.conv_strategy`,
    else by the device and the shape.

    * Launch-bound devices (GPUs): ``"gather"``, a fixed handful of operations whatever
      the shape (a 3x3 conv's forward and backward in 11 launches, where the slice-based
      layouts need one or more per kernel offset).
    * NumPy with Numba installed (and :func:`xpnet.config.native_kernels` on):
      ``"compiled"``, whose columns and fold are compiled loops (:mod:`._compiled`); for
      one input channel per group ``"compiled_depthwise"``, whose three passes are; for a
      thin convolution (:data:`MAX_DIRECT_CHANNELS`) ``"compiled_direct"``, whose forward
      and weight gradient are.
    * Otherwise the layout that moves the fewest bytes: ``"depthwise"`` for one input
      channel per group, ``"flat"`` unless the wrapped positions add more than
      1/:data:`MAX_WRAPPED_FRACTION` to the work (1/:data:`MAX_WRAPPED_FRACTION_STRIDED`
      for strides above 1), else ``"strided"``.
    """
    forced = get_conv_strategy()
    if forced is not None:
        why = applicable(forced, plan)
        if why is not None:
            raise ValueError(f"conv strategy {forced!r} cannot compute this convolution: {why}")
        return forced
    if plan.profile.launch_bound:
        return "gather"
    from . import _compiled  # it builds on this module

    if _compiled.applies(plan):
        if plan.depthwise:
            return "compiled_depthwise"
        return "compiled_direct" if thin(plan) else "compiled"
    if plan.depthwise:
        return "depthwise"
    wrapped = plan.row_if_flat - plan.out_size[1]
    limit = MAX_WRAPPED_FRACTION if plan.stride == (1, 1) else MAX_WRAPPED_FRACTION_STRIDED
    return "flat" if wrapped * limit <= plan.out_size[1] else "strided"


def thin(plan: ConvPlan) -> bool:
    """Whether the compiled kernels compute this convolution directly (see
    :data:`MAX_DIRECT_CHANNELS`)."""
    return (
        plan.groups == 1
        and plan.stride == (1, 1)
        and plan.dilation == (1, 1)
        and plan.in_channels * plan.out_channels <= MAX_DIRECT_CHANNELS
    )


def itemsize(plan: ConvPlan, x: Any) -> int:
    """Bytes per element of ``x`` (float32 or float64)."""
    return 8 if x.dtype == plan.xp.float64 else 4


def chunks(plan: ConvPlan, x: Any, per_image: int) -> list[tuple[int, int]]:
    """Batch ranges whose temporaries (``per_image`` elements per image, plus two
    input-sized staging copies: a re-laid-out and a padded one) fit the workspace budget
    and the device's chunk size (at least one image per chunk)."""
    limit = get_workspace_bytes()
    # The device's chunk size suits its allocator; a traced op's memory is the compiler's,
    # and every chunk is more program to compile (LeNet-5's training step under jax.jit at
    # batch 256: 2.1 s to compile in 16 MiB chunks, 1.4 s without, running as fast).
    if plan.profile.chunk_bytes is not None and not is_lazy(x):
        limit = min(limit, plan.profile.chunk_bytes)
    staging = 2 * plan.in_channels * plan.padded[0] * plan.padded[1]
    size = max(1, limit // ((per_image + staging) * itemsize(plan, x)))
    if plan.batch == 0:
        return [(0, 0)]  # an empty batch is one empty chunk: results of the right shape
    return [(start, min(start + size, plan.batch)) for start in range(0, plan.batch, size)]


def concat_chunks(plan: ConvPlan, x: Any, per_image: int, run: Callable[[int, int], Any]) -> Any:
    """``run(start, stop)`` over the batch chunks of :func:`chunks`, joined along the batch.

    Concatenating would hold every chunk's result and the joined array at once: twice the
    output, which breaks the workspace promise once the output outgrows the budget. So
    where the library's arrays are writeable, each chunk's result is copied into the
    output as soon as it is made, into an array this function has just allocated (the
    one place an op writes in place: nobody else holds it yet). Immutable arrays (JAX,
    whose compiler places the pieces itself) are concatenated.
    """
    ranges = chunks(plan, x, per_image)
    first = run(*ranges[0])
    if len(ranges) == 1:
        return first
    xp = plan.xp
    shape = (plan.batch, *tuple(first.shape)[1:])
    out = xp.empty(shape, dtype=first.dtype, device=array_api_compat.device(first))
    if not array_api_compat.is_writeable_array(out):
        return xp.concat([first, *(run(start, stop) for start, stop in ranges[1:])], axis=0)
    out[: ranges[0][1], ...] = first
    first = None  # released before the next chunk is computed
    for start, stop in ranges[1:]:
        out[start:stop, ...] = run(start, stop)
    return out


def sum_chunks(plan: ConvPlan, x: Any, per_image: int, run: Callable[[int, int], Any]) -> Any:
    """The sum of ``run(start, stop)`` over the batch chunks of :func:`chunks`."""
    total = None
    for start, stop in chunks(plan, x, per_image):
        part = run(start, stop)
        total = part if total is None else total + part
    return total
