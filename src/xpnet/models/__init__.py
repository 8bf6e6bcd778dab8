"""Ready-made architectures: the small models of the digits and MNIST, and a zoo in
torchvision's layouts (ResNet-18/34/50, VGG-11 with batch norm, MobileNetV2), the CIFAR
ResNet-20 and a U-Net. :func:`build_model` builds the classifiers by name (what
``xpnet train --model`` uses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import nn
from .._limits import input_size_problem
from ..random import resolve_rng
from ._mobilenet import InvertedResidual, MobileNetV2, mobilenet_v2
from ._resnet import (
    BasicBlock,
    Bottleneck,
    CifarResNet,
    ResNet,
    resnet18,
    resnet20,
    resnet34,
    resnet50,
)
from ._small import lenet5, mlp, resnet_small, simple_cnn, simple_cnn_bn
from ._unet import UNet, unet
from ._vgg import VGG, vgg11_bn

__all__ = [
    "MIN_IMAGE_SIZE",
    "MODELS",
    "VGG",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "InvertedResidual",
    "MobileNetV2",
    "ResNet",
    "UNet",
    "build_model",
    "lenet5",
    "mlp",
    "mobilenet_v2",
    "resnet18",
    "resnet20",
    "resnet34",
    "resnet50",
    "resnet_small",
    "simple_cnn",
    "simple_cnn_bn",
    "unet",
    "vgg11_bn",
]

#: The image classifiers :func:`build_model` (and ``xpnet train --model``) knows.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": lenet5,
    "simple_cnn": simple_cnn,
    "simple_cnn_bn": simple_cnn_bn,
    "mlp": mlp,
    "resnet_small": resnet_small,
    "resnet20": resnet20,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "vgg11_bn": vgg11_bn,
    "mobilenet_v2": mobilenet_v2,
}

#: The smallest image side each classifier accepts (its downsampling needs it).
MIN_IMAGE_SIZE = {"resnet18": 32, "resnet34": 32, "resnet50": 32, "vgg11_bn": 32,
                  "mobilenet_v2": 32}  # fmt: skip


def build_model(
    name: str, in_channels: int, num_classes: int, image_size: int, **factory: Any
) -> nn.Module:
    """Build a registered classifier by name (kept as the model's ``architecture``).

    Raises
    ------
    ValueError
        For an unknown name (listing the known ones), or images too small for it.
    """
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(f"model: unknown model {name!r}; choose from {sorted(MODELS)}") from None
    problem = input_size_problem(in_channels, image_size)
    if problem is not None:  # checked before any layer allocates its weights
        raise ValueError(problem)
    smallest = MIN_IMAGE_SIZE.get(name, 1)
    if image_size < smallest:
        raise ValueError(
            f"image_size: {name} needs images of at least {smallest}x{smallest}, got "
            f"{image_size}x{image_size}"
        )
    # One generator for all layers: an int seed per layer would repeat the same numbers.
    factory["rng"] = resolve_rng(factory.get("rng"))
    model = builder(
        in_channels=in_channels, num_classes=num_classes, image_size=image_size, **factory
    )
    model.architecture = name  # what pictures and reports call it
    return model
