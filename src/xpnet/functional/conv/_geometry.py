"""The arguments of a convolution of any rank (1-, 2- or 3-D), and of a transposed one,
checked once; each error names the argument, what was expected and what came."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._numbers import integer
from ...backends import DeviceProfile, device_profile
from .._validation import (
    as_tuple,
    check_float,
    check_ndim,
    check_same_dtype,
    check_shape,
    namespace_of,
)
from .._windows import sliding_output_size

__all__ = ["ConvGeometry", "check_conv", "check_conv_transpose", "layout"]

_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
_KERNEL = {1: "k", 2: "kH, kW", 3: "kD, kH, kW"}
_PADDING_KIND = {1: "a 1-tuple", 2: "a pair", 3: "a 3-tuple"}


def layout(rank: int) -> str:
    """The input layout of a ``rank``-D convolution, for errors: ``(N, C, H, W) or (C, H, W)``."""
    return f"(N, C, {_SPATIAL[rank]}) or (C, {_SPATIAL[rank]})"


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's shapes: a batched ``(batch, in_channels, *size)`` input (an
    unbatched one has a batch of 1 added) and an ``(out_channels, in_channels / groups,
    *kernel)`` weight, giving ``(batch, out_channels, *out_size)``."""

    xp: Any
    profile: DeviceProfile
    unbatched: bool
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]  # (before, after) per spatial axis
    size: tuple[int, ...]
    out_size: tuple[int, ...]

    @property
    def rank(self) -> int:
        """Number of spatial axes."""
        return len(self.kernel)


def _resolve_padding(
    padding: Any,
    rank: int,
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * rank
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"padding: 'same' needs stride 1 (as in torch), got stride {stride}"
                )
            pads = []
            for k, d in zip(kernel, dilation, strict=True):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))  # torch puts the odd one at the end
            return tuple(pads)
        raise ValueError(
            f"padding: expected an int, {_PADDING_KIND[rank]}, 'valid' or 'same', got {padding!r}"
        )
    return tuple((p, p) for p in as_tuple("padding", padding, rank, minimum=0))


def _check_channels(
    x: Any, weight: Any, groups: Any, channels: int, out_channels: int, group_channels: int
) -> None:
    if (integer(groups) or 0) < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    if channels % groups:
        raise ValueError(f"groups: input has {channels} channels, not divisible by groups={groups}")
    if out_channels % groups:
        raise ValueError(
            f"groups: weight has {out_channels} output channels, not divisible by groups={groups}"
        )
    if group_channels * groups != channels:
        raise ValueError(
            f"weight: expects {group_channels * groups} input channels "
            f"({group_channels} per group x groups={groups}), but input has {channels} "
            f"(input shape {tuple(x.shape)}, weight shape {tuple(weight.shape)})"
        )


def _check_arrays(rank: int, x: Any, weight: Any, bias: Any, weight_layout: str) -> Any:
    xp = namespace_of(input=x, weight=weight, bias=bias)
    check_ndim("input", x, (rank + 1, rank + 2), layout(rank))
    check_ndim("weight", weight, (rank + 2,), weight_layout)
    check_float(xp, "input", x)
    check_same_dtype("weight", weight, "input", x)
    if bias is not None:
        check_same_dtype("bias", bias, "input", x)
    kernel = tuple(int(n) for n in weight.shape[2:])
    if min(kernel) < 1 or weight.shape[0] < 1 or weight.shape[1] < 1:
        raise ValueError(
            f"weight: expected at least one output channel, one input channel and a "
            f"{'x'.join('1' * rank)} kernel, got shape {tuple(weight.shape)}"
        )
    return xp


def check_conv(
    rank: int, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any
) -> ConvGeometry:
    """Check a ``rank``-D convolution's arguments (as ``torch.nn.functional.conv{rank}d``)."""
    xp = _check_arrays(
        rank, x, weight, bias, f"(out_channels, in_channels / groups, {_KERNEL[rank]})"
    )
    unbatched = x.ndim == rank + 1
    batch, channels = (1, int(x.shape[0])) if unbatched else (int(x.shape[0]), int(x.shape[1]))
    out_channels, group_channels = int(weight.shape[0]), int(weight.shape[1])
    _check_channels(x, weight, groups, channels, out_channels, group_channels)
    if bias is not None:
        check_shape("bias", bias, (out_channels,), "one value per output channel")
    kernel = tuple(int(n) for n in weight.shape[2:])
    stride_ = as_tuple("stride", stride, rank, minimum=1)
    dilation_ = as_tuple("dilation", dilation, rank, minimum=1)
    pads = _resolve_padding(padding, rank, kernel, stride_, dilation_)
    size = tuple(int(n) for n in x.shape[-rank:])
    out_size = tuple(
        sliding_output_size("weight", n, k, s, d, n + b + a)
        for n, k, s, d, (b, a) in zip(size, kernel, stride_, dilation_, pads, strict=True)
    )
    return ConvGeometry(
        xp=xp,
        profile=device_profile(x),
        unbatched=unbatched,
        batch=batch,
        in_channels=channels,
        out_channels=out_channels,
        groups=groups,
        kernel=kernel,
        stride=stride_,
        dilation=dilation_,
        pads=pads,
        size=size,
        out_size=out_size,
    )


def check_conv_transpose(
    rank: int,
    x: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: Any,
    dilation: Any,
) -> tuple[ConvGeometry, tuple[int, ...]]:
    """Check a ``rank``-D transposed convolution's arguments (as torch's
    ``conv_transpose{rank}d``).

    Returns the geometry of the convolution it transposes, whose input has the transposed
    convolution's output shape, and, per axis, how many positions that convolution has
    beyond ``x``'s (an ``output_padding`` of a dilation or more adds whole positions,
    whose cotangent is zero).
    """
    xp = _check_arrays(
        rank, x, weight, bias, f"(in_channels, out_channels / groups, {_KERNEL[rank]})"
    )
    unbatched = x.ndim == rank + 1
    batch, channels = (1, int(x.shape[0])) if unbatched else (int(x.shape[0]), int(x.shape[1]))
    if (integer(groups) or 0) < 1:
        raise ValueError(f"groups: expected a positive int, got {groups!r}")
    if int(weight.shape[0]) != channels:
        raise ValueError(
            f"weight: expects {int(weight.shape[0])} input channels (its first axis), but "
            f"input has {channels} (input shape {tuple(x.shape)}, weight shape "
            f"{tuple(weight.shape)})"
        )
    if channels % groups:
        raise ValueError(f"groups: input has {channels} channels, not divisible by groups={groups}")
    out_channels = int(weight.shape[1]) * groups
    if bias is not None:
        check_shape("bias", bias, (out_channels,), "one value per output channel")
    if isinstance(padding, str):
        raise ValueError(
            f"padding: a transposed convolution takes an int or {_PADDING_KIND[rank]}, "
            f"got {padding!r}"
        )
    kernel = tuple(int(n) for n in weight.shape[2:])
    stride_ = as_tuple("stride", stride, rank, minimum=1)
    dilation_ = as_tuple("dilation", dilation, rank, minimum=1)
    padding_ = as_tuple("padding", padding, rank, minimum=0)
    extra_ = as_tuple("output_padding", output_padding, rank, minimum=0)
    for op, s, d in zip(extra_, stride_, dilation_, strict=True):
        if op >= max(s, d):
            raise ValueError(
                f"output_padding: expected values smaller than the stride or the dilation "
                f"(as in torch), got {output_padding!r} with stride {stride_} and dilation "
                f"{dilation_}"
            )
    size = tuple(int(n) for n in x.shape[-rank:])
    out_size = tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        for n, s, p, d, k, op in zip(
            size, stride_, padding_, dilation_, kernel, extra_, strict=True
        )
    )
    if min(out_size, default=1) < 1 or min(size, default=1) < 1:
        raise ValueError(
            f"input: spatial size {size} gives an output of size {out_size} (stride {stride_}, "
            f"padding {padding_}, dilation {dilation_}, kernel {kernel}, output_padding "
            f"{extra_}); every size must be positive"
        )
    # The transposed convolution's output is the input of the convolution it transposes.
    positions = tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, p, d, k, s in zip(out_size, padding_, dilation_, kernel, stride_, strict=True)
    )
    geometry = ConvGeometry(
        xp=xp,
        profile=device_profile(x),
        unbatched=unbatched,
        batch=batch,
        in_channels=out_channels,
        out_channels=channels,
        groups=groups,
        kernel=kernel,
        stride=stride_,
        dilation=dilation_,
        pads=tuple((p, p) for p in padding_),
        size=out_size,
        out_size=positions,
    )
    return geometry, tuple(m - n for m, n in zip(positions, size, strict=True))
