"""VGG with batch normalisation, in torchvision's layout."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import nn
from ._common import factory_of, no_rng, torchvision_init

__all__ = ["VGG", "vgg11_bn"]

#: Channels of each 3x3 convolution, "M" for a 2x2 max-pool (torchvision's configuration "A").
VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG(nn.Module):
    """torchvision's VGG: ``features`` (conv-BN-ReLU and max-pools), ``avgpool`` to 7x7 and a
    three-layer ``classifier`` with dropout; its ``state_dict`` keys are torchvision's."""

    def __init__(
        self, config: list[Any], num_classes: int = 1000, in_channels: int = 3,
        hidden: int = 4096, dropout: float = 0.5, **factory: Any,
    ) -> None:  # fmt: skip
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for entry in config:
            if entry == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
                continue
            layers += [
                nn.Conv2d(channels, entry, 3, padding=1, **factory),
                nn.BatchNorm2d(entry, **no_rng(factory)),
                nn.ReLU(inplace=True),
            ]
            channels = entry
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, hidden, **factory),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden, **factory),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes, **factory),
        )
        torchvision_init(self, factory, linear_std=0.01)

    def forward(self, x: Any) -> Any:
        return self.classifier(F.flatten(self.avgpool(self.features(x)), 1))


def vgg11_bn(
    in_channels: int = 3, num_classes: int = 1000, image_size: int | None = None,
    device: Any = None, dtype: str | None = None, rng: Any = None, hidden: int = 4096,
) -> VGG:  # fmt: skip
    """VGG-11 with batch normalisation (torchvision's ``vgg11_bn``: 8 conv layers, 133M
    parameters at 1000 classes, 123M of them in the classifier).

    Parameters
    ----------
    in_channels : int, default 3
    num_classes : int, default 1000
    image_size : int, optional
        Accepted for :func:`build_model`'s uniform signature; needs at least 32x32.
    device, dtype, rng
        As for the layers (:class:`xpnet.nn.Conv2d`).
    hidden : int, default 4096
        Width of the classifier's hidden layers; torchvision's is 4096 (other widths
        change the classifier's shapes, so torchvision weights no longer load).
    """
    factory = factory_of(device, dtype, rng)
    return VGG(VGG11, num_classes, in_channels, hidden=hidden, **factory)
