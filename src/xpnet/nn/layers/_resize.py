"""Resizing and padding layers: ``Upsample``, ``PixelShuffle`` and the ``*PadNd`` family,
as ``torch.nn``'s."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ... import functional as F
from ...functional._validation import as_tuple
from ._base import _Stateless

__all__ = [
    "CircularPad1d",
    "CircularPad2d",
    "CircularPad3d",
    "ConstantPad1d",
    "ConstantPad2d",
    "ConstantPad3d",
    "PixelShuffle",
    "PixelUnshuffle",
    "ReflectionPad1d",
    "ReflectionPad2d",
    "ReflectionPad3d",
    "ReplicationPad1d",
    "ReplicationPad2d",
    "ReplicationPad3d",
    "Upsample",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
    "ZeroPad1d",
    "ZeroPad2d",
    "ZeroPad3d",
]


class Upsample(_Stateless):
    """Resize the spatial axes (see :func:`xpnet.functional.interpolate`), as
    ``torch.nn.Upsample``.

    Parameters
    ----------
    size : int or sequence of int, optional
    scale_factor : float or sequence of float, optional
        Exactly one of the two.
    mode : str, default 'nearest'
    align_corners, recompute_scale_factor : bool, optional
        As for :func:`xpnet.functional.interpolate`.
    """

    def __init__(
        self,
        size: int | Sequence[int] | None = None,
        scale_factor: float | Sequence[float] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        kwargs = {
            "size": self.size,
            "scale_factor": self.scale_factor,
            "mode": self.mode,
            "align_corners": self.align_corners,
            "recompute_scale_factor": self.recompute_scale_factor,
        }
        return F.interpolate, (), kwargs

    def extra_repr(self) -> str:
        what = (
            f"size={self.size!r}"
            if self.size is not None
            else f"scale_factor={self.scale_factor!r}"
        )
        return f"{what}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """``Upsample(mode='nearest')`` for ``(N, C, H, W)``, as torch's."""

    def __init__(
        self,
        size: int | Sequence[int] | None = None,
        scale_factor: float | Sequence[float] | None = None,
    ) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """``Upsample(mode='bilinear', align_corners=True)``, as torch's."""

    def __init__(
        self,
        size: int | Sequence[int] | None = None,
        scale_factor: float | Sequence[float] | None = None,
    ) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(_Stateless):
    """``(*, C * r^2, H, W)`` to ``(*, C, H * r, W * r)``
    (:func:`xpnet.functional.pixel_shuffle`)."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.pixel_shuffle, (self.upscale_factor,), {}

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(_Stateless):
    """``(*, C, H * r, W * r)`` to ``(*, C * r^2, H, W)``
    (:func:`xpnet.functional.pixel_unshuffle`)."""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.pixel_unshuffle, (self.downscale_factor,), {}

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"


class _PadNd(_Stateless):
    """Pad the last ``_rank`` axes (see :func:`xpnet.functional.pad`): ``padding`` is an int
    for every side or torch's ``(left, right, top, bottom, front, back)`` tuple."""

    _rank = 2
    _mode = "constant"

    def __init__(self, padding: int | Sequence[int], value: float = 0.0) -> None:
        super().__init__()
        self.padding = as_tuple("padding", padding, 2 * self._rank, minimum=-(2**62))
        self.value = value

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        value = self.value if self._mode == "constant" else None
        return F.pad, (self.padding,), {"mode": self._mode, "value": value}

    def extra_repr(self) -> str:
        shows_value = self._mode == "constant" and not type(self).__name__.startswith("Zero")
        return f"{self.padding}" + (f", value={self.value}" if shows_value else "")


def _pad_layer(name: str, rank: int, mode: str, fixed_value: float | None) -> type[_PadNd]:
    """A ``*PadNd`` class: ``fixed_value`` (the zero pads) or a ``value`` argument
    (constant pads), none for the other modes."""

    def __init__(self: _PadNd, padding: int | Sequence[int], value: float = 0.0) -> None:
        _PadNd.__init__(self, padding, value if fixed_value is None else fixed_value)

    doc = (
        f"Pad the last {rank} axes with mode {mode!r}, as ``torch.nn.{name}`` (see "
        f":func:`xpnet.functional.pad`): ``padding`` is an int for every side or "
        f"{2 * rank} ints, the last axis's pair first."
    )
    namespace: dict[str, Any] = {"_rank": rank, "_mode": mode, "__doc__": doc}
    if fixed_value is not None or mode != "constant":
        namespace["__init__"] = __init__
    return type(name, (_PadNd,), namespace)


ZeroPad1d = _pad_layer("ZeroPad1d", 1, "constant", 0.0)
ZeroPad2d = _pad_layer("ZeroPad2d", 2, "constant", 0.0)
ZeroPad3d = _pad_layer("ZeroPad3d", 3, "constant", 0.0)
ConstantPad1d = _pad_layer("ConstantPad1d", 1, "constant", None)
ConstantPad2d = _pad_layer("ConstantPad2d", 2, "constant", None)
ConstantPad3d = _pad_layer("ConstantPad3d", 3, "constant", None)
ReflectionPad1d = _pad_layer("ReflectionPad1d", 1, "reflect", None)
ReflectionPad2d = _pad_layer("ReflectionPad2d", 2, "reflect", None)
ReflectionPad3d = _pad_layer("ReflectionPad3d", 3, "reflect", None)
ReplicationPad1d = _pad_layer("ReplicationPad1d", 1, "replicate", None)
ReplicationPad2d = _pad_layer("ReplicationPad2d", 2, "replicate", None)
ReplicationPad3d = _pad_layer("ReplicationPad3d", 3, "replicate", None)
CircularPad1d = _pad_layer("CircularPad1d", 1, "circular", None)
CircularPad2d = _pad_layer("CircularPad2d", 2, "circular", None)
CircularPad3d = _pad_layer("CircularPad3d", 3, "circular", None)
