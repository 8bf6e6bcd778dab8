"""MobileNetV2 (Sandler et al. 2018) in torchvision's layout."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import nn
from ._common import Factory, factory_of, no_rng, torchvision_init

__all__ = ["InvertedResidual", "MobileNetV2", "mobilenet_v2"]

#: Expansion ``t``, output channels ``c``, repeats ``n``, first stride ``s`` of each stage.
STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of it (the rule of
    the MobileNet papers' reference code)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_relu6(
    inp: int, out: int, kernel: int, stride: int, groups: int, factory: Factory
) -> nn.Sequential:
    """torchvision's ``Conv2dNormActivation`` with ReLU6: keys ``0`` (conv), ``1`` (BN)."""
    return nn.Sequential(
        nn.Conv2d(
            inp,
            out,
            kernel,
            stride=stride,
            padding=(kernel - 1) // 2,
            groups=groups,
            bias=False,
            **factory,
        ),
        nn.BatchNorm2d(out, **no_rng(factory)),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand with a 1x1 conv (unless ``expand_ratio`` is 1), filter depthwise 3x3, project
    linearly with a 1x1 conv; the input is added back when the shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, **factory: Any) -> None:
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(inp, hidden, 1, 1, 1, factory))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, hidden, factory),
            nn.Conv2d(hidden, oup, 1, bias=False, **factory),
            nn.BatchNorm2d(oup, **no_rng(factory)),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Any) -> Any:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2: ``features`` (a stride-2 stem, 17 inverted residual blocks,
    a 1x1 conv to 1280 channels) and ``classifier`` (dropout, linear)."""

    def __init__(
        self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
        dropout: float = 0.2, **factory: Any,
    ) -> None:  # fmt: skip
        super().__init__()
        channels = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [_conv_bn_relu6(in_channels, channels, 3, 2, 1, factory)]
        for t, c, n, s in STAGES:
            out = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, t, **factory))
                channels = out
        features.append(_conv_bn_relu6(channels, last, 1, 1, 1, factory))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(last, num_classes, **factory)
        )
        torchvision_init(self, factory, conv_nonlinearity="leaky_relu", linear_std=0.01)

    def forward(self, x: Any) -> Any:
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(F.flatten(x, 1))


def mobilenet_v2(
    in_channels: int = 3, num_classes: int = 1000, image_size: int | None = None,
    device: Any = None, dtype: str | None = None, rng: Any = None, width_mult: float = 1.0,
) -> MobileNetV2:  # fmt: skip
    """MobileNetV2 (torchvision's ``mobilenet_v2``: 3.5M parameters at 1000 classes).

    Parameters
    ----------
    in_channels : int, default 3
    num_classes : int, default 1000
    image_size : int, optional
        Accepted for :func:`build_model`'s uniform signature; any size of at least 32.
    device, dtype, rng
        As for the layers (:class:`xpnet.nn.Conv2d`).
    width_mult : float, default 1.0
        Scales every stage's channels (rounded to multiples of 8).
    """
    factory = factory_of(device, dtype, rng)
    return MobileNetV2(num_classes, in_channels, width_mult, **factory)
