"""Learning-rate schedules with ``torch.optim.lr_scheduler``'s rules (one step per epoch)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .optimizer import Optimizer

if TYPE_CHECKING:
    from ..distributed import DistributedOptimizer

__all__ = ["CosineAnnealingLR", "LRScheduler", "StepLR"]


class LRScheduler:
    """Base class: sets ``optimizer.lr`` on every :meth:`step` (one step per epoch).

    Like torch's schedulers, each step derives the new rate from the current one
    (the "chainable" form), so the rates match ``torch.optim.lr_scheduler`` to the bit.
    """

    def __init__(self, optimizer: Optimizer | DistributedOptimizer) -> None:
        # A wrapper such as xpnet.distributed.DistributedOptimizer: schedule what it wraps.
        inner = (
            optimizer if isinstance(optimizer, Optimizer) else getattr(optimizer, "optimizer", None)
        )
        if not isinstance(inner, Optimizer):
            raise TypeError(
                f"optimizer: expected an xpnet Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = inner
        self.base_lr = inner.lr
        self.last_epoch = 0

    def _next_lr(self, epoch: int, lr: float) -> float:
        """The rate for ``epoch`` given the rate ``lr`` of the epoch before."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the optimizer's learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr(self.last_epoch, self.optimizer.lr)

    def get_last_lr(self) -> list[float]:
        """The learning rate set by the last :meth:`step` (a list, as in torch)."""
        return [self.optimizer.lr]

    def state_dict(self) -> dict[str, float]:
        """What a checkpoint needs to resume the schedule (JSON-serialisable numbers)."""
        return {
            "base_lr": self.base_lr,
            "last_epoch": self.last_epoch,
            "last_lr": self.optimizer.lr,
        }

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        """Restore the schedule and the optimizer's current learning rate."""
        self.base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])
        if "last_lr" in state:
            self.optimizer.lr = float(state["last_lr"])
        else:  # replay the schedule
            lr = self.base_lr
            for epoch in range(1, self.last_epoch + 1):
                lr = self._next_lr(epoch, lr)
            self.optimizer.lr = lr


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs
    (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size: expected a positive int, got {step_size!r}")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, float(gamma)

    def _next_lr(self, epoch: int, lr: float) -> float:
        return lr * self.gamma if epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the initial rate to ``eta_min`` over ``T_max`` epochs
    (``torch.optim.lr_scheduler.CosineAnnealingLR``; past ``T_max`` it rises again, as
    torch's does)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"T_max: expected a positive int, got {T_max!r}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, float(eta_min)

    def _next_lr(self, epoch: int, lr: float) -> float:
        t_max, eta_min = self.T_max, self.eta_min
        if (epoch - 1 - t_max) % (2 * t_max) == 0:
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return (1 + math.cos(math.pi * epoch / t_max)) / (
            1 + math.cos(math.pi * (epoch - 1) / t_max)
        ) * (lr - eta_min) + eta_min
