"""The window arithmetic pooling shares: arguments checked once, output sizes as torch
counts them, and tiling windows laid back out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...backends import DeviceProfile, device_profile
from .._validation import as_pair, check_float, check_ndim, namespace_of
from .._windows import pad2d

__all__ = ["IntPair", "PoolPlan", "batched", "pooled_size", "unbatched", "untile", "window_plan"]


IntPair = int | tuple[int, int]


@dataclass(frozen=True)
class PoolPlan:
    """Everything a windowed pooling pass needs, checked once."""

    xp: Any
    profile: DeviceProfile
    unbatched: bool
    size: tuple[int, int]  # input height, width
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    out_size: tuple[int, int]
    extra: tuple[int, int]  # ceil-mode overhang past the bottom / right padding

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """``(top, bottom, left, right)`` padding, overhang included."""
        (ph, pw), (eh, ew) = self.padding, self.extra
        return (ph, ph + eh, pw, pw + ew)

    @property
    def padded(self) -> tuple[int, int]:
        top, bottom, left, right = self.pads
        return (self.size[0] + top + bottom, self.size[1] + left + right)

    @property
    def tiles(self) -> bool:
        """Whether the windows tile (a crop of) the input: disjoint, laid back by a reshape."""
        return (
            self.stride == self.kernel
            and self.dilation == (1, 1)
            and self.padding == (0, 0)
            and self.extra == (0, 0)
        )


def pooled_size(
    size: int, kernel: int, stride: int, dilation: int, pad: int, ceil_mode: bool
) -> tuple[int, int]:
    """Number of windows along one axis and the overhang past the padding, as torch counts.

    Unlike a convolution, torch's ceil mode may keep a single window that is wider than the
    padded input (it then covers all of it), so only an empty output is an error.
    """
    span = dilation * (kernel - 1) + 1
    padded = size + 2 * pad
    out = (padded - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    # torch drops a last window that would start inside the right padding.
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    if out < 1:
        raise ValueError(
            f"kernel_size: window of extent {span} (kernel {kernel}, dilation {dilation}) is "
            f"larger than the padded input ({padded}, from input size {size} and padding {pad})"
        )
    return out, max(0, (out - 1) * stride + span - padded)


def window_plan(
    x: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
) -> PoolPlan:
    xp = namespace_of(input=x)
    check_ndim("input", x, (3, 4), "(N, C, H, W) or (C, H, W)")
    check_float(xp, "input", x)
    kernel = as_pair("kernel_size", kernel_size, minimum=1)
    stride_ = kernel if stride is None else as_pair("stride", stride, minimum=1)
    padding_ = as_pair("padding", padding, minimum=0)
    dilation_ = as_pair("dilation", dilation, minimum=1)
    if any(p > k // 2 for p, k in zip(padding_, kernel, strict=True)):
        raise ValueError(
            f"padding: expected at most half of kernel_size on each axis (as torch requires), "
            f"got padding {padding!r} with kernel_size {kernel_size!r}"
        )
    size = (int(x.shape[-2]), int(x.shape[-1]))
    sizes = [
        pooled_size(n, k, s, d, p, bool(ceil_mode))
        for n, k, s, d, p in zip(size, kernel, stride_, dilation_, padding_, strict=True)
    ]
    return PoolPlan(
        xp=xp,
        profile=device_profile(x),
        unbatched=x.ndim == 3,
        size=size,
        kernel=kernel,
        stride=stride_,
        dilation=dilation_,
        padding=padding_,
        out_size=(sizes[0][0], sizes[1][0]),
        extra=(sizes[0][1], sizes[1][1]),
    )


def untile(plan: PoolPlan, blocks: Any) -> Any:
    """Lay tiling windows ``(N, C, OH, kH, OW, kW)`` back out as ``(N, C, H, W)``, with zeros
    in the rows and columns that floor mode left out."""
    (oh, ow), (kh, kw), (h, w) = plan.out_size, plan.kernel, plan.size
    full = plan.xp.reshape(blocks, (blocks.shape[0], blocks.shape[1], oh * kh, ow * kw))
    return pad2d(plan.xp, full, (0, h - oh * kh, 0, w - ow * kw))


def batched(plan: PoolPlan, x: Any) -> Any:
    return plan.xp.expand_dims(x, axis=0) if plan.unbatched else x


def unbatched(plan: PoolPlan, y: Any) -> Any:
    return y[0, ...] if plan.unbatched else y
