"""A training step that averages its gradients over the processes before updating."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..nn import Module
from ..nn.grad import loss_output_and_grads
from ..optim import Optimizer
from ..train.compile._eager import correct_predictions
from ._comm import Communicator
from ._optimizer import DistributedOptimizer

__all__ = ["DistributedStep"]


class DistributedStep:
    """One data-parallel step: this process's share of the batch forward and backward,
    one allreduce of gradients, loss and counts, then the same update on every process.

    ``examples`` holds the number of examples of the last step over all processes.
    """

    compiled = False

    def __init__(
        self,
        model: Module,
        optimizer: Optimizer,
        loss_fn: Callable[..., Any],
        comm: Communicator,
        grad_transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.model, self.optimizer, self.loss_fn, self.comm = model, optimizer, loss_fn, comm
        self._averaging = DistributedOptimizer(optimizer, comm, grad_transform=grad_transform)
        self.examples = 0

    @property
    def how(self) -> str:
        """How the step runs, in a few words."""
        return f"eager, data-parallel over {self.comm.size} processes (one allreduce per step)"

    def run(self, x: Any, target: Any) -> tuple[Any, Any]:
        """One step on this process's share ``(x, target)``: the mean loss and the correct
        predictions over all processes' shares, as host scalars."""
        count = int(target.shape[0])
        if count:
            loss, output, grads = loss_output_and_grads(self.model, self.loss_fn, x, target)
            correct = correct_predictions(output, target)
        else:
            # No examples here (a small last batch): it contributes nothing to the sums, so
            # the parameters stand in for gradients of the right shapes.
            grads, loss, correct = dict(self.model.named_parameters()), None, None
        mean_loss, correct_all, self.examples = self._averaging.step(
            grads, count=count, loss=loss, correct=correct
        )
        return np.float64(mean_loss), np.int64(correct_all)

    def __call__(self, x: Any, target: Any) -> Any:
        """One step; returns the mean loss over all processes' shares."""
        return self.run(x, target)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.how})"
