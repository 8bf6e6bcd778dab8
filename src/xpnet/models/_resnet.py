"""Residual networks: torchvision's ImageNet ResNets (so its weights load) and the CIFAR
ResNet-20 of He et al. (2016)."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import nn
from ._common import Factory, factory_of, no_rng, torchvision_init

__all__ = ["BasicBlock", "Bottleneck", "CifarResNet", "ResNet", "resnet18", "resnet20",
           "resnet34", "resnet50"]  # fmt: skip


def _conv3x3(inplanes: int, planes: int, stride: int, factory: Factory) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False, **factory)


def _conv1x1(inplanes: int, planes: int, stride: int, factory: Factory) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False, **factory)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, plus the shortcut (torchvision's block)."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1,
        downsample: nn.Module | None = None, **factory: Any,
    ) -> None:  # fmt: skip
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride, factory)
        self.bn1 = nn.BatchNorm2d(planes, **no_rng(factory))
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, factory)
        self.bn2 = nn.BatchNorm2d(planes, **no_rng(factory))
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Any:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, torchvision's "v1.5"), 1x1 expand by 4."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1,
        downsample: nn.Module | None = None, **factory: Any,
    ) -> None:  # fmt: skip
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes, 1, factory)
        self.bn1 = nn.BatchNorm2d(planes, **no_rng(factory))
        self.conv2 = _conv3x3(planes, planes, stride, factory)
        self.bn2 = nn.BatchNorm2d(planes, **no_rng(factory))
        self.conv3 = _conv1x1(planes, planes * self.expansion, 1, factory)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, **no_rng(factory))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Any) -> Any:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet: a 7x7 stride-2 stem and 3x3 max-pool, four stages of blocks
    (64 to 512 planes, stride 2 from the second on), global average pooling and ``fc``.
    Its ``state_dict`` keys are torchvision's, so torchvision's weights load as they are.
    """

    def __init__(
        self, block: type[BasicBlock] | type[Bottleneck], layers: list[int],
        num_classes: int = 1000, in_channels: int = 3, **factory: Any,
    ) -> None:  # fmt: skip
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False, **factory)
        self.bn1 = nn.BatchNorm2d(64, **no_rng(factory))
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, factory)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, factory)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, factory)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, factory)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes, **factory)
        torchvision_init(self, factory)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int,
        stride: int, factory: Factory,
    ) -> nn.Sequential:  # fmt: skip
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride, factory),
                nn.BatchNorm2d(planes * block.expansion, **no_rng(factory)),
            )
        layers = [block(self.inplanes, planes, stride, downsample, **factory)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, **factory) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Any) -> Any:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(F.flatten(self.avgpool(x), 1))


def _resnet(
    block: type[BasicBlock] | type[Bottleneck], layers: list[int], in_channels: int,
    num_classes: int, device: Any, dtype: str | None, rng: Any,
) -> ResNet:  # fmt: skip
    factory = factory_of(device, dtype, rng)
    return ResNet(block, layers, num_classes, in_channels, **factory)


_IMAGENET_DOC = """ResNet-{depth} in torchvision's layout ({blocks} blocks per stage), for
    ``(N, {{in_channels}}, H, W)`` images of at least 32x32 (224x224 on ImageNet).

    Parameters
    ----------
    in_channels : int, default 3
    num_classes : int, default 1000
    image_size : int, optional
        Accepted for :func:`build_model`'s uniform signature; any size of at least 32 works.
    device, dtype, rng
        As for the layers (:class:`xpnet.nn.Conv2d`).

    Returns
    -------
    ResNet
        Initialised as torchvision's (Kaiming-normal convolutions, fan-out); load
        torchvision's weights with ``model.load_state_dict({{k: v.numpy() for k, v in
        tv_model.state_dict().items()}})``.
"""


def resnet18(
    in_channels: int = 3, num_classes: int = 1000, image_size: int | None = None,
    device: Any = None, dtype: str | None = None, rng: Any = None,
) -> ResNet:  # fmt: skip
    return _resnet(BasicBlock, [2, 2, 2, 2], in_channels, num_classes, device, dtype, rng)


def resnet34(
    in_channels: int = 3, num_classes: int = 1000, image_size: int | None = None,
    device: Any = None, dtype: str | None = None, rng: Any = None,
) -> ResNet:  # fmt: skip
    return _resnet(BasicBlock, [3, 4, 6, 3], in_channels, num_classes, device, dtype, rng)


def resnet50(
    in_channels: int = 3, num_classes: int = 1000, image_size: int | None = None,
    device: Any = None, dtype: str | None = None, rng: Any = None,
) -> ResNet:  # fmt: skip
    return _resnet(Bottleneck, [3, 4, 6, 3], in_channels, num_classes, device, dtype, rng)


resnet18.__doc__ = _IMAGENET_DOC.format(depth=18, blocks="2, 2, 2, 2 basic")
resnet34.__doc__ = _IMAGENET_DOC.format(depth=34, blocks="3, 4, 6, 3 basic")
resnet50.__doc__ = _IMAGENET_DOC.format(depth=50, blocks="3, 4, 6, 3 bottleneck")


# --------------------------------------------------------------------------- CIFAR


class _CifarBlock(nn.Module):
    """The CIFAR basic block: two 3x3 conv-BN, and the parameter-free shortcut of the paper
    ("option A"): a stride-2 subsample with the new channels zero-padded."""

    def __init__(self, inplanes: int, planes: int, stride: int, **factory: Any) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride, factory)
        self.bn1 = nn.BatchNorm2d(planes, **no_rng(factory))
        self.conv2 = _conv3x3(planes, planes, 1, factory)
        self.bn2 = nn.BatchNorm2d(planes, **no_rng(factory))
        self.stride = stride
        self.pad_channels = planes - inplanes

    def forward(self, x: Any) -> Any:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.pad_channels:
            half = self.pad_channels // 2
            shortcut = x[:, :, :: self.stride, :: self.stride]
            shortcut = F.pad(shortcut, (0, 0, 0, 0, half, self.pad_channels - half))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2): a 16-channel 3x3 stem, three stages of ``n`` basic
    blocks (16, 32, 64 channels; stride 2 into the last two), global average pooling and
    ``linear``."""

    def __init__(
        self, blocks: int, num_classes: int = 10, in_channels: int = 3, **factory: Any
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, 16, 1, factory)
        self.bn1 = nn.BatchNorm2d(16, **no_rng(factory))
        stages = []
        inplanes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            stage = [_CifarBlock(inplanes, planes, stride, **factory)]
            stage += [_CifarBlock(planes, planes, 1, **factory) for _ in range(1, blocks)]
            stages.append(nn.Sequential(*stage))
            inplanes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes, **factory)
        # The paper's initialisation (He et al. 2015): Kaiming-normal, fan-in.
        torchvision_init(self, factory, conv_mode="fan_in")

    def forward(self, x: Any) -> Any:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet20(
    in_channels: int = 3, num_classes: int = 10, image_size: int | None = None,
    device: Any = None, dtype: str | None = None, rng: Any = None,
) -> CifarResNet:  # fmt: skip
    """ResNet-20 for 32x32 images (He et al. 2016, section 4.2): 3 stages of 3 basic blocks,
    0.27M parameters, about 41M multiply-adds per image.

    Parameters
    ----------
    in_channels : int, default 3
    num_classes : int, default 10
    image_size : int, optional
        Accepted for :func:`build_model`'s uniform signature; any size works (global
        pooling), 32 is the paper's.
    device, dtype, rng
        As for the layers (:class:`xpnet.nn.Conv2d`).
    """
    factory = factory_of(device, dtype, rng)
    return CifarResNet(3, num_classes, in_channels, **factory)
