"""Activations and softmax, each with a hand-written pullback.

All of them take floating-point input only: an integer array raises ``TypeError`` naming
``input`` (torch allows ``relu`` on integers, but a gradient of an integer array means
nothing, and xpnet's ops are for training). Every op keeps the input's namespace, device and
dtype, and has a hand-written pullback that follows torch's backward formulas, including
the gradient where the function has a kink (``relu`` at 0: 0, ``leaky_relu``:
``negative_slope``). One family per module: rectifiers, squashing functions, gelu, softmax.
"""

from ._gelu import gelu
from ._rectifiers import elu, leaky_relu, prelu, relu, relu6, selu
from ._sigmoids import hardsigmoid, hardswish, mish, sigmoid, silu, softplus, tanh
from ._softmax import log_softmax, log_softmax_last, softmax

__all__ = [
    "elu",
    "gelu",
    "hardsigmoid",
    "hardswish",
    "leaky_relu",
    "log_softmax",
    "log_softmax_last",
    "mish",
    "prelu",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
]
