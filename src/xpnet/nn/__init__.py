"""Layers and models with ``torch.nn``'s names, arguments, defaults and state_dict keys."""

from . import init
from .grad import value_and_grad
from .layers import (
    GELU,
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from .module import IncompatibleKeys, Module, ModulePullback, Residual, Sequential, StateDictError

__all__ = [
    "GELU",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Identity",
    "IncompatibleKeys",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "Module",
    "ModulePullback",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "StateDictError",
    "Tanh",
    "init",
    "value_and_grad",
]
