"""U-Net (Ronneberger et al. 2015) for segmentation, in the layout of the widely used
PyTorch implementation (``inc``, ``down1``-``down4``, ``up1``-``up4``, ``outc``)."""

from __future__ import annotations

from typing import Any

import array_api_compat

from .. import functional as F
from .. import nn
from ._common import factory_of, no_rng

__all__ = ["UNet", "unet"]


class DoubleConv(nn.Module):
    """(3x3 conv without bias, batch norm, ReLU) twice."""

    def __init__(self, inp: int, out: int, mid: int | None = None, **factory: Any) -> None:
        super().__init__()
        mid = mid or out
        self.double_conv = nn.Sequential(
            nn.Conv2d(inp, mid, 3, padding=1, bias=False, **factory),
            nn.BatchNorm2d(mid, **no_rng(factory)),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out, 3, padding=1, bias=False, **factory),
            nn.BatchNorm2d(out, **no_rng(factory)),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Any) -> Any:
        return self.double_conv(x)


class Down(nn.Module):
    """Halve the resolution (2x2 max-pool), then :class:`DoubleConv`."""

    def __init__(self, inp: int, out: int, **factory: Any) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(inp, out, **factory))

    def forward(self, x: Any) -> Any:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Double the resolution (a 2x2 stride-2 transposed conv, or bilinear upsampling),
    pad to the skip's size, concatenate the skip, then :class:`DoubleConv`."""

    def __init__(self, inp: int, out: int, bilinear: bool = False, **factory: Any) -> None:
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(inp, out, inp // 2, **factory)
        else:
            self.up = nn.ConvTranspose2d(inp, inp // 2, 2, stride=2, **factory)
            self.conv = DoubleConv(inp, out, **factory)

    def forward(self, low: Any, skip: Any) -> Any:
        low = self.up(low)
        dy = int(skip.shape[2]) - int(low.shape[2])
        dx = int(skip.shape[3]) - int(low.shape[3])
        low = F.pad(low, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))
        xp = array_api_compat.array_namespace(skip, low)
        return self.conv(xp.concat([skip, low], axis=1))


class OutConv(nn.Module):
    """The per-pixel classifier: a 1x1 convolution."""

    def __init__(self, inp: int, out: int, **factory: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inp, out, 1, **factory)

    def forward(self, x: Any) -> Any:
        return self.conv(x)


class UNet(nn.Module):
    """Four halvings and four doublings with concatenated skips; a 1x1 convolution gives
    ``num_classes`` logits per pixel. ``base_channels`` is the first level's width (64 in
    the paper), doubled at each level."""

    def __init__(
        self, in_channels: int = 3, num_classes: int = 2, base_channels: int = 64,
        bilinear: bool = False, **factory: Any,
    ) -> None:  # fmt: skip
        super().__init__()
        b, factor = base_channels, (2 if bilinear else 1)
        self.inc = DoubleConv(in_channels, b, **factory)
        self.down1 = Down(b, 2 * b, **factory)
        self.down2 = Down(2 * b, 4 * b, **factory)
        self.down3 = Down(4 * b, 8 * b, **factory)
        self.down4 = Down(8 * b, 16 * b // factor, **factory)
        self.up1 = Up(16 * b, 8 * b // factor, bilinear, **factory)
        self.up2 = Up(8 * b, 4 * b // factor, bilinear, **factory)
        self.up3 = Up(4 * b, 2 * b // factor, bilinear, **factory)
        self.up4 = Up(2 * b, b, bilinear, **factory)
        self.outc = OutConv(b, num_classes, **factory)

    def forward(self, x: Any) -> Any:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x = self.up1(self.down4(x4), x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        return self.outc(self.up4(x, x1))


def unet(
    in_channels: int = 3, num_classes: int = 2, base_channels: int = 16,
    bilinear: bool = False, device: Any = None, dtype: str | None = None, rng: Any = None,
) -> UNet:  # fmt: skip
    """A U-Net for ``(N, in_channels, H, W)`` images (H and W any size of at least 16),
    ``num_classes`` logits per pixel.

    Parameters
    ----------
    in_channels : int, default 3
    num_classes : int, default 2
    base_channels : int, default 16
        Width of the first level (the paper's is 64: 31M parameters; 16 gives 1.9M).
    bilinear : bool, default False
        Bilinear upsampling instead of transposed convolutions.
    device, dtype, rng
        As for the layers (:class:`xpnet.nn.Conv2d`).
    """
    factory = factory_of(device, dtype, rng)
    return UNet(in_channels, num_classes, base_channels, bilinear, **factory)
