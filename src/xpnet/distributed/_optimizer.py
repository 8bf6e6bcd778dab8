"""An optimizer that averages its gradients over the processes before each update."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..nn import Module
from ..optim import Optimizer
from ._comm import Communicator
from ._sync import allreduce_mean

__all__ = ["DistributedOptimizer"]


class DistributedOptimizer:
    """Wraps an optimizer so that :meth:`step` first averages the gradients over all
    processes (one allreduce), then updates as the wrapped optimizer does; every replica
    makes the same update.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer of this process's replica.
    comm : Communicator
        The job's processes (:func:`xpnet.distributed.init`).
    grad_transform : callable, optional
        Applied to the averaged gradients before the update (e.g. clipping their norm,
        which must see the average, not one process's share).

    Notes
    -----
    For loops of your own::

        optimizer = distributed.DistributedOptimizer(optim.Adam(model, lr=1e-3), comm)
        loss, grads = nn.value_and_grad(model, F.cross_entropy, x_share, y_share)
        optimizer.step(grads, count=len(y_share))

    :func:`xpnet.fit` takes it too (the same as the wrapped optimizer with ``comm=``). The
    learning rate, ``state_dict`` and ``load_state_dict`` are the wrapped optimizer's, and
    schedulers schedule the wrapped optimizer, so both work unchanged.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        comm: Communicator,
        *,
        grad_transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer: expected an xpnet Optimizer, got {type(optimizer).__name__}"
            )
        if not isinstance(comm, Communicator):
            raise TypeError(
                "comm: expected an xpnet.distributed.Communicator (from "
                f"xpnet.distributed.init()), got {type(comm).__name__}"
            )
        self.optimizer = optimizer
        self.comm = comm
        self.grad_transform = grad_transform

    def step(
        self, grads: Mapping[str, Any], *, count: int = 1, loss: Any = None, correct: Any = None
    ) -> tuple[float, int, int]:
        """Average ``grads`` over the processes, weighted by ``count``, and update.

        Parameters
        ----------
        grads : mapping
            This process's mean gradients, by parameter name.
        count : int, default 1
            Examples behind them (0: this process contributes nothing). With the default,
            every process weighs the same.
        loss, correct : 0-d arrays or numbers, optional
            This process's mean loss and correct predictions, averaged and summed in the
            same allreduce.

        Returns
        -------
        (float, int, int)
            The mean loss over all processes' examples, their correct predictions, and the
            number of examples.
        """
        averaged, mean_loss, correct_all, examples = allreduce_mean(
            grads, self.comm, count=count, loss=loss, correct=correct
        )
        if self.grad_transform is not None:
            self.grad_transform(averaged)
        self.optimizer.step(averaged)
        return mean_loss, correct_all, examples

    @property
    def model(self) -> Module:
        """The model the wrapped optimizer updates."""
        return self.optimizer.model

    @property
    def lr(self) -> float:
        """The wrapped optimizer's learning rate (settable: every group's)."""
        return float(self.optimizer.lr)

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    @property
    def defaults(self) -> dict[str, Any]:
        """The wrapped optimizer's default options."""
        return self.optimizer.defaults

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The wrapped optimizer's parameter groups (what schedulers set)."""
        return self.optimizer.param_groups

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state (the same on every process)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the wrapped optimizer's state."""
        self.optimizer.load_state_dict(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.optimizer!r}, {self.comm.size} processes)"
