"""A training step compiled by the backend's own compiler: :func:`compile_step`.

xpnet's ops are pure functions with hand-written pullbacks and no in-place writes, so a
whole step (forward, pullback, optimizer update) can be handed to a compiler:

* **JAX**: the step under ``jax.jit`` (:mod:`._jax`);
* **CuPy**: the step captured as one CUDA graph (:mod:`._cuda_graphs`);
* **torch**: eager. ``torch.compile`` of the step was measured on a 2-core CPU: 29-82 s
  to compile, then 1.3x faster forward+backward (12.7 against 16.8 ms for LeNet-5 at
  batch 64), which a training run of minutes never pays back; CUDA graphs for torch
  were not measured (no GPU was at hand);
* **NumPy, array-api-strict** and anything else: eager, with the same interface.

Each framework is imported only inside its branch. The ops themselves stay one Array API
code path; only this package knows about compilers.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import array_api_compat

from ... import functional as F
from ...nn import Module
from ...optim import Optimizer
from ._eager import EagerStep, correct_predictions, evaluation_batch

__all__ = [
    "CompileWarning",
    "EagerStep",
    "GradTransform",
    "TrainStep",
    "compile_evaluation",
    "compile_step",
    "correct_predictions",
    "evaluation_batch",
    "output_shape",
]


class CompileWarning(UserWarning):
    """A step could not be compiled as asked and runs eagerly instead."""


class TrainStep(Protocol):
    """What :func:`compile_step` returns: call it on a batch to train one step."""

    compiled: bool
    model: Module
    optimizer: Optimizer

    @property
    def how(self) -> str:
        """How the step runs, in a few words."""
        ...

    def run(self, x: Any, target: Any) -> tuple[Any, Any]:
        """The loss and the number of correct predictions (0-d arrays on the device)."""
        ...

    def __call__(self, x: Any, target: Any) -> Any:
        """One step; the loss as a 0-d array on the device."""
        ...


_said: set[str] = set()


def _say_once(key: str, message: str) -> None:
    if key not in _said:
        _said.add(key)
        warnings.warn(message, CompileWarning, stacklevel=3)


GradTransform = Callable[[dict[str, Any]], Any]


def compile_step(
    model: Module,
    optimizer: Optimizer,
    loss_fn: Callable[..., Any] = F.cross_entropy,
    *,
    grad_transform: GradTransform | None = None,
) -> TrainStep:
    """A training step for ``model``, compiled by its backend's compiler where it has one.

    Parameters
    ----------
    model : Module
        Its parameters decide the backend.
    optimizer : Optimizer
        Built on ``model``.
    loss_fn : callable, default ``F.cross_entropy``
        Any loss, called as ``loss_fn(model(x), target)``.
    grad_transform : callable, optional
        Called with the dict of gradients before the update; it may replace its entries
        (``lambda g: nn.utils.clip_grad_norm_(g, 1.0)``). Compiled with the step, so it
        must not read values back to the host.

    Returns
    -------
    TrainStep
        ``loss = step(x, target)`` trains one step and returns the loss as a 0-d array on
        the device (no host sync); the model's parameters and buffers and the optimizer's
        state advance as with ``value_and_grad`` and ``optimizer.step``, and
        ``state_dict()`` shows them. ``step.run(x, target)`` also returns the number of
        correct predictions. ``step.compiled`` says whether a compiler runs it,
        ``step.how`` how.

    Notes
    -----
    A backend without a compiler says so once (a :class:`CompileWarning`) and runs the
    same step eagerly. The compiled and eager steps agree to float32 round-off. The
    optimizer's settings other than the learning rate are part of what is compiled:
    changing them triggers a new compilation (JAX) or capture (CuPy).

    Examples
    --------
    >>> import numpy as np, xpnet, xpnet.functional as F
    >>> from xpnet import nn, optim
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=0))
    >>> step = xpnet.compile_step(model, optim.SGD(model, lr=0.1), F.cross_entropy)
    >>> loss = step(xpnet.asarray(np.ones((2, 1, 2, 2)), "float32"), xpnet.asarray([0, 2]))
    >>> loss.shape, step.compiled
    ((), False)
    """
    if not isinstance(model, Module):
        raise TypeError(f"model: expected an xpnet Module, got {type(model).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer: expected an xpnet Optimizer, got {type(optimizer).__name__}")
    if optimizer.model is not model:
        raise ValueError("optimizer: was built for a different model")
    params = list(model.parameters())
    if not params:
        raise ValueError("model: has no parameters to train")
    xp = array_api_compat.array_namespace(params[0])
    if array_api_compat.is_jax_namespace(xp):
        from ._jax import JaxStep

        return JaxStep(model, optimizer, loss_fn, grad_transform)
    if array_api_compat.is_cupy_namespace(xp):
        from ._cuda_graphs import CudaGraphStep

        return CudaGraphStep(model, optimizer, loss_fn, grad_transform=grad_transform)
    if array_api_compat.is_torch_namespace(xp):
        reason = "torch: eager measured best (torch.compile takes minutes to pay back)"
    else:
        reason = f"{xp.__name__} has no compiler"
    _say_once(xp.__name__, f"compile_step: {reason}; running the step eagerly")
    return EagerStep(model, optimizer, loss_fn, reason, grad_transform)


def _namespace(model: Module) -> Any:
    params = list(model.parameters()) or list(model.buffers())
    return array_api_compat.array_namespace(params[0]) if params else None


Evaluation = Callable[[Any, Any], tuple[Any, Any]]
_evaluations: weakref.WeakKeyDictionary[Module, dict[Any, Evaluation]] = weakref.WeakKeyDictionary()


def compile_evaluation(model: Module, loss_fn: Callable[..., Any] = F.cross_entropy) -> Evaluation:
    """``(x, target) -> (summed loss, correct predictions)`` of ``model`` as it is (put it
    in inference mode first), compiled with ``jax.jit`` on JAX, eager elsewhere: 0-d arrays
    on the device."""
    xp = _namespace(model)
    if xp is not None and array_api_compat.is_jax_namespace(xp):
        from ._jax import JaxEvaluation

        # One per model and loss: a new jax.jit would compile again at every evaluation.
        known = _evaluations.setdefault(model, {})
        evaluation = known.get(loss_fn)
        if evaluation is None:
            evaluation = known[loss_fn] = JaxEvaluation(model, loss_fn)
        return evaluation
    return lambda x, target: evaluation_batch(model, loss_fn, x, target)


def output_shape(model: Module, x: Any) -> tuple[int, ...]:
    """The shape of ``model(x)`` (as the model is, e.g. in inference mode): traced on JAX,
    where running it eagerly would compile every op for this input's shape; run elsewhere."""
    if array_api_compat.is_jax_array(x):
        from ._jax import output_shape as traced_shape

        return traced_shape(model, x)
    return tuple(model(x).shape)
