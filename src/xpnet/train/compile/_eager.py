"""The eager step: forward, pullback and optimizer update op by op (every backend)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import array_api_compat

from ...nn import Module
from ...nn.grad import loss_output_and_grads
from ...optim import Optimizer

__all__ = ["EagerStep", "correct_predictions", "evaluation_batch", "required_gradient"]


def required_gradient(grads: Mapping[str, Any], name: str) -> Any:
    """The gradient of parameter ``name``; one the loss does not reach is an error here, as
    the compiled update has it in its layout (an eager step leaves such a parameter
    alone)."""
    if name not in grads:
        raise ValueError(
            f"compile_step: the loss does not depend on parameter {name!r}, so it has no "
            "gradient; a compiled step updates every parameter of its optimizer: leave it "
            "out of the optimizer's param_groups, or train it eagerly"
        )
    return grads[name]


def correct_predictions(output: Any, target: Any) -> Any:
    """How many rows of ``output`` have their largest score at ``target``: a 0-d integer
    array on the device (reading it is up to the caller)."""
    xp = array_api_compat.array_namespace(output)
    hits = xp.argmax(output, axis=1) == target
    return xp.sum(xp.astype(hits, xp.int64))


def evaluation_batch(
    model: Module, loss_fn: Callable[..., Any], x: Any, target: Any
) -> tuple[Any, Any]:
    """The summed loss and the correct predictions of ``model`` (as it is, normally in
    inference mode) on one batch: 0-d arrays on the device."""
    output = model(x)
    return loss_fn(output, target, reduction="sum"), correct_predictions(output, target)


class EagerStep:
    """One training step run op by op: what every backend can do.

    Parameters
    ----------
    model, optimizer, loss_fn
        As for :func:`xpnet.compile_step`.
    reason : str
        Why this backend's steps are not compiled (shown by ``repr`` and by ``fit``).
    grad_transform : callable, optional
        Applied to the gradients before the update (see :func:`xpnet.compile_step`).
    """

    compiled = False

    def __init__(
        self,
        model: Module,
        optimizer: Optimizer,
        loss_fn: Callable[..., Any],
        reason: str,
        grad_transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.reason = reason
        self.grad_transform = grad_transform

    @property
    def how(self) -> str:
        """How the step runs, in a few words."""
        return f"eager ({self.reason})"

    def run(self, x: Any, target: Any) -> tuple[Any, Any]:
        """One step on the batch ``(x, target)``: the loss and the number of correct
        predictions, both 0-d arrays on the device."""
        loss, output, grads = loss_output_and_grads(self.model, self.loss_fn, x, target)
        if self.grad_transform is not None:
            self.grad_transform(grads)
        self.optimizer.step(grads)
        return loss, correct_predictions(output, target)

    def __call__(self, x: Any, target: Any) -> Any:
        """One step on the batch ``(x, target)``; returns the loss (0-d, on the device)."""
        return self.run(x, target)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.how})"
