"""Convolution layers of 1, 2 and 3 spatial axes and their transposes, as ``torch.nn``'s."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ... import functional as F
from ...functional._validation import as_tuple
from ...functional.padding import PAD_MODES
from ...random import Generator, resolve_rng
from .. import init
from ._base import _check_dtype, _Parametrized, _positive_int

__all__ = [
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
]

#: ``padding_mode`` names, as torch's, and the :func:`xpnet.functional.pad` mode of each.
PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                 "circular": "circular"}  # fmt: skip
assert set(PADDING_MODES.values()) == set(PAD_MODES)


class _ConvBase(_Parametrized):
    """What the convolutions and their transposes share: checks, parameters, repr."""

    _rank = 2
    _transposed = False

    def _setup(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        groups: int,
        bias: bool,
        padding_mode: str,
        device: Any,
        dtype: str | None,
        rng: Generator | int | None,
    ) -> None:
        rank = self._rank
        in_channels = _positive_int("in_channels", in_channels)
        out_channels = _positive_int("out_channels", out_channels)
        groups = _positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"both be divisible by groups ({groups})"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(
                f"padding_mode: expected one of {', '.join(map(repr, PADDING_MODES))}, got "
                f"{padding_mode!r}"
            )
        if self._transposed and padding_mode != "zeros":
            raise ValueError(
                f"padding_mode: a transposed convolution pads with 'zeros' only (as in "
                f"torch), got {padding_mode!r}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_tuple("kernel_size", kernel_size, rank, minimum=1)
        self.stride = as_tuple("stride", stride, rank, minimum=1)
        self.dilation = as_tuple("dilation", dilation, rank, minimum=1)
        if isinstance(padding, str):
            if self._transposed or padding not in ("same", "valid"):
                allowed = (
                    "an int or a tuple"
                    if self._transposed
                    else "an int, a tuple, 'same' or 'valid'"
                )
                raise ValueError(f"padding: expected {allowed}, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(
                    f"padding: 'same' needs stride 1 (as in torch), got stride {self.stride}"
                )
            self.padding: tuple[int, ...] | str = padding
        else:
            self.padding = as_tuple("padding", padding, rank, minimum=0)
        self.padding_mode = padding_mode
        dtype = _check_dtype(dtype)
        generator = resolve_rng(rng)
        if self._transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        # torch's initialisation: Kaiming-uniform with a = sqrt(5), the bias uniform in
        # +-1/sqrt(fan_in), fan_in from the weight's second axis and kernel.
        self.register_parameter(
            "weight",
            init.kaiming_uniform(shape, a=math.sqrt(5), rng=generator, dtype=dtype, device=device),
        )
        bound = 1.0 / math.sqrt(init.fans(shape)[0])
        self.register_parameter(
            "bias",
            init.uniform((out_channels,), -bound, bound, rng=generator, dtype=dtype, device=device)
            if bias
            else None,
        )

    def extra_repr(self) -> str:
        rank = self._rank
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0,) * rank:
            text += f", padding={self.padding!r}"
        if self.dilation != (1,) * rank:
            text += f", dilation={self.dilation}"
        if getattr(self, "output_padding", (0,) * rank) != (0,) * rank:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self._parameters["bias"] is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode!r}"
        return text


class _ConvNd(_ConvBase):
    """A convolution layer of ``_rank`` spatial axes."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | str = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: str | None = None,
        *,
        rng: Generator | int | None = None,
    ) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, device, dtype, rng)  # fmt: skip

    def _explicit_pads(self) -> tuple[int, ...]:
        """``F.pad``'s pads (last axis first, two per axis) for a non-zero padding mode."""
        pairs = []
        for k, d, p in zip(self.kernel_size, self.dilation, self._padding_values(), strict=True):
            if self.padding == "same":
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            else:
                pairs.append((p, p))
        return tuple(v for pair in reversed(pairs) for v in pair)

    def _padding_values(self) -> tuple[int, ...]:
        return (0,) * self._rank if isinstance(self.padding, str) else self.padding

    def forward(self, x: Any) -> Any:
        op = getattr(F, f"conv{self._rank}d")
        weight, bias = self._parameters["weight"], self._parameters["bias"]
        options = {"stride": self.stride, "dilation": self.dilation, "groups": self.groups}
        if self.padding_mode == "zeros" or self.padding == "valid":
            return op(x, weight, bias, padding=self.padding, **options)
        # As torch: pad explicitly with the mode, then convolve without padding.
        padded = F.pad(x, self._explicit_pads(), mode=PADDING_MODES[self.padding_mode])
        return op(padded, weight, bias, padding=0, **options)


_CONV_DOC = """{rank}-D convolution layer (see :func:`xpnet.functional.conv{rank}d`), as
    ``torch.nn.Conv{rank}d``.

    The weight ``(out_channels, in_channels / groups, {kernel})`` and the bias are
    initialised as torch's: Kaiming-uniform with ``a = sqrt(5)``, the bias
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output.
    kernel_size : int or tuple of {rank} ints
    stride, dilation : int or tuple of {rank} ints, default 1
    padding : int, tuple of {rank} ints, 'same' or 'valid', default 0
    groups : int, default 1
    bias : bool, default True
    padding_mode : {{'zeros', 'reflect', 'replicate', 'circular'}}, default 'zeros'
        How the padding is filled (:func:`xpnet.functional.pad`).
    device : optional
        Device of the active backend for the parameters (its default if omitted).
    dtype : {{'float32', 'float64'}}, optional
        Parameter dtype, ``'float32'`` by default.
    rng : numpy.random.Generator or int, optional, keyword-only
        Generator (or seed) for the initial values; xpnet's global one (:func:`xpnet.seed`)
        if omitted. The weight is drawn before the bias.
"""


class Conv1d(_ConvNd):
    _rank = 1


class Conv2d(_ConvNd):
    _rank = 2


class Conv3d(_ConvNd):
    _rank = 3


class _ConvTransposeNd(_ConvBase):
    """A transposed convolution layer of ``_rank`` spatial axes."""

    _transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        output_padding: int | Sequence[int] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | Sequence[int] = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: str | None = None,
        *,
        rng: Generator | int | None = None,
    ) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, device, dtype, rng)  # fmt: skip
        self.output_padding = as_tuple("output_padding", output_padding, self._rank, minimum=0)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation, strict=True):
            if op >= max(s, d):
                raise ValueError(
                    f"output_padding: expected values smaller than the stride or the "
                    f"dilation (as in torch), got {output_padding!r} with stride "
                    f"{self.stride} and dilation {self.dilation}"
                )

    def _output_padding_for(self, x: Any, output_size: Any) -> tuple[int, ...]:
        """The output padding that gives ``output_size`` (torch's ``output_size=``)."""
        rank = self._rank
        if isinstance(output_size, str) or not isinstance(output_size, Sequence):
            raise TypeError(f"output_size: expected a sequence of ints, got {output_size!r}")
        sizes = [int(n) for n in output_size]
        if len(sizes) not in (rank, x.ndim):
            raise ValueError(
                f"output_size: expected {rank} spatial sizes (or the whole output shape), got "
                f"{tuple(output_size)}"
            )
        sizes = sizes[-rank:]
        paddings = []
        for axis in range(rank):
            n = int(x.shape[x.ndim - rank + axis])
            k, s, d = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
            assert not isinstance(self.padding, str)
            smallest = (n - 1) * s - 2 * self.padding[axis] + d * (k - 1) + 1
            if not smallest <= sizes[axis] < smallest + max(s, d):
                raise ValueError(
                    f"output_size: axis {axis} can be {smallest} to {smallest + max(s, d) - 1} "
                    f"for an input of size {n}, got {sizes[axis]}"
                )
            paddings.append(sizes[axis] - smallest)
        return tuple(paddings)

    def forward(self, x: Any, output_size: Sequence[int] | None = None) -> Any:
        op = getattr(F, f"conv_transpose{self._rank}d")
        output_padding = (
            self.output_padding if output_size is None else self._output_padding_for(x, output_size)
        )
        return op(
            x,
            self._parameters["weight"],
            self._parameters["bias"],
            stride=self.stride,
            padding=self.padding,
            output_padding=output_padding,
            groups=self.groups,
            dilation=self.dilation,
        )


_TRANSPOSE_DOC = """{rank}-D transposed convolution layer (see
    :func:`xpnet.functional.conv_transpose{rank}d`), as ``torch.nn.ConvTranspose{rank}d``.

    The weight ``(in_channels, out_channels / groups, {kernel})`` and the bias are
    initialised as torch's (Kaiming-uniform with ``a = sqrt(5)``). ``forward(x,
    output_size=None)`` takes torch's ``output_size`` to choose among the output sizes a
    stride above 1 allows.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output.
    kernel_size : int or tuple of {rank} ints
    stride, dilation : int or tuple of {rank} ints, default 1
    padding, output_padding : int or tuple of {rank} ints, default 0
    groups : int, default 1
    bias : bool, default True
    padding_mode : {{'zeros'}}
        The only mode of a transposed convolution, as in torch.
    device, dtype, rng
        As for :class:`Conv{rank}d`.
"""


class ConvTranspose1d(_ConvTransposeNd):
    _rank = 1


class ConvTranspose2d(_ConvTransposeNd):
    _rank = 2


class ConvTranspose3d(_ConvTransposeNd):
    _rank = 3


_KERNELS = {1: "k", 2: "kH, kW", 3: "kD, kH, kW"}
for _conv in (Conv1d, Conv2d, Conv3d):
    _conv.__doc__ = _CONV_DOC.format(rank=_conv._rank, kernel=_KERNELS[_conv._rank])
for _transpose in (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d):
    _transpose.__doc__ = _TRANSPOSE_DOC.format(
        rank=_transpose._rank, kernel=_KERNELS[_transpose._rank]
    )
Conv2d.__doc__ = (
    (Conv2d.__doc__ or "")
    + """
    Examples
    --------
    >>> import xpnet
    >>> from xpnet import nn
    >>> conv = nn.Conv2d(1, 6, 5, padding=2, rng=0)
    >>> conv(xpnet.asarray([[[[0.0] * 28] * 28]])).shape
    (1, 6, 28, 28)
"""
)
