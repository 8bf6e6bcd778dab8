"""Layers with ``torch.nn``'s names, arguments and defaults, built on :mod:`xpnet.functional`.

Parameters are created on the active backend (or ``device``) with ``dtype``
(``"float32"`` by default), from the seeded host generator (``xpnet.seed`` or ``rng=``),
so one seed builds the same model on every backend.
"""

from ._elementwise import GELU, Dropout, Flatten, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from ._normalization import BatchNorm2d
from ._pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from ._weighted import Conv2d, Linear

__all__ = [
    "GELU",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Identity",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
