"""Pooling layers of 1, 2 and 3 spatial axes, as ``torch.nn``'s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ... import functional as F
from ._base import _pair_repr, _Stateless

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
]


class _MaxPoolNd(_Stateless):
    """Max pooling of ``_rank`` spatial axes (see :func:`xpnet.functional.max_pool2d`).

    ``stride`` defaults to ``kernel_size``. With ``return_indices=True`` the layer returns
    ``(output, indices)`` as torch does (the indices carry no gradient).
    """

    _rank = 2

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
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
            "return_indices": self.return_indices,  # torch's (output, flat indices) pair
        }
        return getattr(F, f"max_pool{self._rank}d"), (self.kernel_size,), kwargs

    def extra_repr(self) -> str:
        return (
            f"kernel_size={_pair_repr(self.kernel_size)}, stride={_pair_repr(self.stride)}, "
            f"padding={_pair_repr(self.padding)}, dilation={_pair_repr(self.dilation)}, "
            f"ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling (see :func:`xpnet.functional.max_pool1d`), as ``torch.nn.MaxPool1d``."""

    _rank = 1


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling (see :func:`xpnet.functional.max_pool2d`), as ``torch.nn.MaxPool2d``.

    ``stride`` defaults to ``kernel_size``. With ``return_indices=True`` the layer returns
    ``(output, indices)`` as torch does (the indices carry no gradient).
    """

    _rank = 2


class MaxPool3d(_MaxPoolNd):
    """3-D max pooling (see :func:`xpnet.functional.max_pool3d`), as ``torch.nn.MaxPool3d``."""

    _rank = 3


class _AvgPoolNd(_Stateless):
    """Average pooling of ``_rank`` spatial axes (see :func:`xpnet.functional.avg_pool2d`)."""

    _rank = 2

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
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
        kwargs: dict[str, Any] = {
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }
        if self._rank > 1:  # torch's avg_pool1d has no divisor_override
            kwargs["divisor_override"] = self.divisor_override
        return getattr(F, f"avg_pool{self._rank}d"), (self.kernel_size,), kwargs

    def extra_repr(self) -> str:
        return (
            f"kernel_size={_pair_repr(self.kernel_size)}, stride={_pair_repr(self.stride)}, "
            f"padding={_pair_repr(self.padding)}"
        )


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling (see :func:`xpnet.functional.avg_pool1d`), as
    ``torch.nn.AvgPool1d`` (which has no ``divisor_override``)."""

    _rank = 1

    def __init__(
        self,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] | None = None,
        padding: int | tuple[int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling (see :func:`xpnet.functional.avg_pool2d`), as
    ``torch.nn.AvgPool2d``."""

    _rank = 2


class AvgPool3d(_AvgPoolNd):
    """3-D average pooling (see :func:`xpnet.functional.avg_pool3d`), as
    ``torch.nn.AvgPool3d``."""

    _rank = 3


class _AdaptiveAvgPoolNd(_Stateless):
    """Average-pool to a fixed output size."""

    _rank = 2

    def __init__(self, output_size: int | tuple[int | None, ...]) -> None:
        super().__init__()
        self.output_size = output_size

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return getattr(F, f"adaptive_avg_pool{self._rank}d"), (self.output_size,), {}

    def extra_repr(self) -> str:
        return f"output_size={_pair_repr(self.output_size)}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average-pool ``(N, C, L)`` to a fixed length
    (:func:`xpnet.functional.adaptive_avg_pool1d`)."""

    _rank = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average-pool ``(N, C, H, W)`` to a fixed size
    (:func:`xpnet.functional.adaptive_avg_pool2d`)."""

    _rank = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Average-pool ``(N, C, D, H, W)`` to a fixed size
    (:func:`xpnet.functional.adaptive_avg_pool3d`)."""

    _rank = 3


class _AdaptiveMaxPoolNd(_Stateless):
    """Max-pool to a fixed output size; ``return_indices=True`` returns ``(output, indices)``."""

    _rank = 2

    def __init__(
        self, output_size: int | tuple[int | None, ...], return_indices: bool = False
    ) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        op = getattr(F, f"adaptive_max_pool{self._rank}d")
        return op, (self.output_size,), {"return_indices": self.return_indices}

    def extra_repr(self) -> str:
        return f"output_size={_pair_repr(self.output_size)}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max-pool ``(N, C, L)`` to a fixed length (:func:`xpnet.functional.adaptive_max_pool1d`)."""

    _rank = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max-pool ``(N, C, H, W)`` to a fixed size (:func:`xpnet.functional.adaptive_max_pool2d`)."""

    _rank = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max-pool ``(N, C, D, H, W)`` to a fixed size
    (:func:`xpnet.functional.adaptive_max_pool3d`)."""

    _rank = 3
