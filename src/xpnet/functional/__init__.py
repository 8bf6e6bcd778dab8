"""The ops, named and behaving like ``torch.nn.functional``; each has a pullback.

Import it as ``F``::

    import xpnet.functional as F
    y, pullback = F.vjp(F.conv2d, x, w, b, stride=2, padding=1)
    dx, dw, db = pullback(dy)

Compositions are differentiated by recording: inside :func:`grad` or :func:`value_and_grad`
each op here is one step with its own pullback, and code written against the Array API
standard (operators, indexing, the functions of the arrays' namespace) records its steps
too. :func:`primitive` and :func:`defvjp` add an op of your own.

Every op takes its namespace from its inputs, so the same call works on NumPy, CuPy,
PyTorch, JAX and array-api-strict arrays, and returns an array of the same library,
device and dtype.
"""

from ._autodiff import (
    DifferentiationError,
    Pullback,
    defvjp,
    differentiable_ops,
    grad,
    primitive,
    stop_gradient,
    value_and_grad,
    vjp,
)
from .activations import (
    elu,
    gelu,
    hardsigmoid,
    hardswish,
    leaky_relu,
    log_softmax,
    mish,
    prelu,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    tanh,
)
from .conv import (
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
)
from .encoding import one_hot
from .linear import dropout, dropout1d, dropout2d, dropout3d, flatten, linear
from .losses import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from .normalization import batch_norm, group_norm, instance_norm, layer_norm
from .padding import pad
from .pooling import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
)
from .resize import interpolate, pixel_shuffle, pixel_unshuffle

__all__ = [
    "DifferentiationError",
    "Pullback",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "cross_entropy",
    "defvjp",
    "differentiable_ops",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "elu",
    "flatten",
    "gelu",
    "grad",
    "group_norm",
    "hardsigmoid",
    "hardswish",
    "huber_loss",
    "instance_norm",
    "interpolate",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "mish",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "pad",
    "pixel_shuffle",
    "pixel_unshuffle",
    "prelu",
    "primitive",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "softmax",
    "softplus",
    "stop_gradient",
    "tanh",
    "value_and_grad",
    "vjp",
]
