"""xpnet: convolutional neural networks written once against the Python Array API standard.

The same code runs on NumPy, CuPy, PyTorch tensors, JAX and array-api-strict; pick one with
:func:`set_backend` or :func:`use_backend`. Importing xpnet imports only NumPy and
array-api-compat; a backend's library is imported when that backend is first used.
"""

from . import config, data, functional, models, nn, optim, train
from ._version import __version__
from .backends import (
    ActiveBackend,
    BackendInfo,
    BackendSpec,
    BackendUnavailableError,
    UnknownBackendError,
    asarray,
    available_backends,
    get_backend,
    get_namespace,
    list_backends,
    register_backend,
    set_backend,
    to_numpy,
    unregister_backend,
    use_backend,
)
from .functional import DifferentiationError, stop_gradient
from .nn import grad, value_and_grad
from .random import seed
from .train import compile_step, evaluate, fit

__all__ = [
    "ActiveBackend",
    "BackendInfo",
    "BackendSpec",
    "BackendUnavailableError",
    "DifferentiationError",
    "UnknownBackendError",
    "__version__",
    "asarray",
    "available_backends",
    "compile_step",
    "config",
    "data",
    "evaluate",
    "fit",
    "functional",
    "get_backend",
    "get_namespace",
    "grad",
    "list_backends",
    "models",
    "nn",
    "optim",
    "register_backend",
    "seed",
    "set_backend",
    "stop_gradient",
    "to_numpy",
    "train",
    "unregister_backend",
    "use_backend",
    "value_and_grad",
]
