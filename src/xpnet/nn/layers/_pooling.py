"""Pooling layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ... import functional as F
from ._base import _pair_repr, _Stateless


class MaxPool2d(_Stateless):
    """2-D max pooling (see :func:`xpnet.functional.max_pool2d`).

    ``stride`` defaults to ``kernel_size``. With ``return_indices=True`` the layer returns
    ``(output, indices)`` as torch does (the indices carry no gradient).
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        kwargs = {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "ceil_mode": self.ceil_mode,
        }
        return F.max_pool2d, (self.kernel_size,), kwargs

    def forward(self, x: Any) -> Any:
        if self.return_indices:  # torch's (output, flat indices) pair
            op, args, kwargs = self._call()
            return op(x, *args, return_indices=True, **kwargs)
        return super().forward(x)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={_pair_repr(self.kernel_size)}, stride={_pair_repr(self.stride)}, "
            f"padding={_pair_repr(self.padding)}"
        )


class AvgPool2d(_Stateless):
    """2-D average pooling (see :func:`xpnet.functional.avg_pool2d`)."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        kwargs = {
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
            "divisor_override": self.divisor_override,
        }
        return F.avg_pool2d, (self.kernel_size,), kwargs

    def extra_repr(self) -> str:
        return (
            f"kernel_size={_pair_repr(self.kernel_size)}, stride={_pair_repr(self.stride)}, "
            f"padding={_pair_repr(self.padding)}"
        )


class AdaptiveAvgPool2d(_Stateless):
    """Average-pool to a fixed output size."""

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        self.output_size = output_size

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.adaptive_avg_pool2d, (self.output_size,), {}

    def extra_repr(self) -> str:
        return f"output_size={_pair_repr(self.output_size)}"
