"""Layers with weights: Conv2d and Linear."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ... import functional as F
from ...random import Generator, resolve_rng
from .. import init
from ._base import _check_dtype, _pair_repr, _Parametrized, _positive_int


class Conv2d(_Parametrized):
    """2-D convolution layer (see :func:`xpnet.functional.conv2d`), as ``torch.nn.Conv2d``.

    Weights ``(out_channels, in_channels / groups, kH, kW)`` and bias are initialised as
    torch does: Kaiming-uniform with ``a = sqrt(5)``, bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output.
    kernel_size, stride, padding, dilation, groups, bias
        As in torch; ``padding`` may be ``"same"`` or ``"valid"``.
    padding_mode : {"zeros"}
        Only zero padding is supported.
    device : optional
        Device of the active backend for the parameters (its default if omitted).
    dtype : {"float32", "float64"}, optional
        Parameter dtype, ``"float32"`` by default.
    rng : numpy.random.Generator or int, optional, keyword-only
        Generator (or seed) for the initial values; xpnet's global one (:func:`xpnet.seed`)
        if omitted. The weight is drawn before the bias.

    Examples
    --------
    >>> import xpnet
    >>> from xpnet import nn
    >>> conv = nn.Conv2d(1, 6, 5, padding=2, rng=0)
    >>> conv(xpnet.asarray([[[[0.0] * 28] * 28]])).shape
    (1, 6, 28, 28)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: str | None = None,
        *,
        rng: Generator | int | None = None,
    ) -> None:
        super().__init__()
        in_channels = _positive_int("in_channels", in_channels)
        out_channels = _positive_int("out_channels", out_channels)
        groups = _positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"both be divisible by groups ({groups})"
            )
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode: only 'zeros' is supported, got {padding_mode!r}")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        _positive_int("kernel_size", kh)
        _positive_int("kernel_size", kw)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        dtype = _check_dtype(dtype)
        generator = resolve_rng(rng)
        shape = (out_channels, in_channels // groups, kh, kw)
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

    def _op(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        kwargs = {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }
        return F.conv2d, kwargs

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={_pair_repr(self.stride)}"
        )
        if self.padding != 0:
            text += f", padding={_pair_repr(self.padding)}"
        if self.dilation != 1:
            text += f", dilation={_pair_repr(self.dilation)}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self._parameters["bias"] is None:
            text += ", bias=False"
        return text


class Linear(_Parametrized):
    """Fully connected layer ``y = x @ weight.T + bias``, as ``torch.nn.Linear``.

    ``weight`` ``(out_features, in_features)`` is Kaiming-uniform with ``a = sqrt(5)``, i.e.
    ``U(-1/sqrt(in_features), 1/sqrt(in_features))``, and so is ``bias``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last axis of the input and of the output.
    bias : bool, default True
        Learn an additive bias.
    device, dtype, rng
        As for :class:`Conv2d`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: str | None = None,
        *,
        rng: Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _positive_int("in_features", in_features)
        self.out_features = _positive_int("out_features", out_features)
        dtype = _check_dtype(dtype)
        generator = resolve_rng(rng)
        shape = (out_features, in_features)
        self.register_parameter(
            "weight",
            init.kaiming_uniform(shape, a=math.sqrt(5), rng=generator, dtype=dtype, device=device),
        )
        bound = 1.0 / math.sqrt(in_features)
        self.register_parameter(
            "bias",
            init.uniform((out_features,), -bound, bound, rng=generator, dtype=dtype, device=device)
            if bias
            else None,
        )

    def _op(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        return F.linear, {}

    def extra_repr(self) -> str:
        bias = self._parameters["bias"] is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"
