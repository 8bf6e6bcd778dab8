"""The ops, named and behaving like ``torch.nn.functional``; each has a pullback.

Import it as ``F``::

    import xpnet.functional as F
    y, pullback = F.vjp(F.conv2d, x, w, b, stride=2, padding=1)
    dx, dw, db = pullback(dy)

Every op takes its namespace from its inputs, so the same call works on NumPy, CuPy,
PyTorch, JAX and array-api-strict arrays, and returns an array of the same library,
device and dtype.
"""

from ._autodiff import Pullback, differentiable_ops, vjp
from .activations import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .conv import conv2d
from .linear import dropout, flatten, linear
from .losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .normalization import batch_norm
from .pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d

__all__ = [
    "Pullback",
    "adaptive_avg_pool2d",
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "differentiable_ops",
    "dropout",
    "flatten",
    "gelu",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
    "vjp",
]
