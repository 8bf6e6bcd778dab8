"""Learning-rate schedules with ``torch.optim.lr_scheduler``'s rules (one step per epoch)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["CosineAnnealingLR", "LRScheduler", "StepLR"]


class LRScheduler:
    """Base class: sets the learning rate of every parameter group on every :meth:`step`
    (one step per epoch).

    Like torch's schedulers, each step derives a group's new rate from its current one
    (the "chainable" form), each group from its own initial rate, so the rates match
    ``torch.optim.lr_scheduler`` to the bit.

    Parameters
    ----------
    optimizer
        Anything with torch's ``param_groups`` (a list of dicts with ``"lr"``): an xpnet
        optimizer, or a wrapper such as :class:`xpnet.distributed.DistributedOptimizer`.
    """

    def __init__(self, optimizer: Any) -> None:
        groups = getattr(optimizer, "param_groups", None)
        if (
            not isinstance(groups, list)
            or not groups
            or not all(isinstance(g, dict) and "lr" in g for g in groups)
        ):
            raise TypeError(
                "optimizer: expected an optimizer with param_groups (a list of dicts with "
                f"'lr'), got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lrs = [float(group["lr"]) for group in groups]
        self.last_epoch = 0

    @property
    def base_lr(self) -> float:
        """The first group's initial learning rate."""
        return self.base_lrs[0]

    def _groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.optimizer.param_groups
        return groups

    def _next_lr(self, epoch: int, lr: float, base_lr: float) -> float:
        """The rate for ``epoch`` given the rate ``lr`` of the epoch before, for a group
        whose initial rate is ``base_lr``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set every group's learning rate."""
        self.last_epoch += 1
        for group, base in zip(self._groups(), self.base_lrs, strict=True):
            group["lr"] = self._next_lr(self.last_epoch, group["lr"], base)

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last :meth:`step`, one per group (as in torch)."""
        return [float(group["lr"]) for group in self._groups()]

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume the schedule (JSON-serialisable): the first
        group's rates as ``base_lr`` and ``last_lr``, every group's as lists."""
        last = self.get_last_lr()
        return {
            "base_lr": self.base_lrs[0],
            "last_epoch": self.last_epoch,
            "last_lr": last[0],
            "base_lrs": list(self.base_lrs),
            "last_lrs": last,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the schedule and every group's current learning rate."""
        groups = self._groups()
        base_lrs = [float(v) for v in state.get("base_lrs", [state["base_lr"]])]
        if len(base_lrs) != len(groups):
            raise ValueError(
                f"scheduler state has {len(base_lrs)} parameter groups, the optimizer has "
                f"{len(groups)}"
            )
        self.base_lrs = base_lrs
        self.last_epoch = int(state["last_epoch"])
        if "last_lrs" in state or "last_lr" in state:
            last = [float(v) for v in state.get("last_lrs", [state.get("last_lr")])]
            for group, lr in zip(groups, last, strict=True):
                group["lr"] = lr
        else:  # replay the schedule
            for group, base in zip(groups, self.base_lrs, strict=True):
                lr = base
                for epoch in range(1, self.last_epoch + 1):
                    lr = self._next_lr(epoch, lr, base)
                group["lr"] = lr


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs
    (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size: expected a positive int, got {step_size!r}")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, float(gamma)

    def _next_lr(self, epoch: int, lr: float, base_lr: float) -> float:
        return lr * self.gamma if epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the initial rate to ``eta_min`` over ``T_max`` epochs
    (``torch.optim.lr_scheduler.CosineAnnealingLR``; past ``T_max`` it rises again, as
    torch's does)."""

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0) -> None:
        if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"T_max: expected a positive int, got {T_max!r}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, float(eta_min)

    def _next_lr(self, epoch: int, lr: float, base_lr: float) -> float:
        t_max, eta_min = self.T_max, self.eta_min
        if (epoch - 1 - t_max) % (2 * t_max) == 0:
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return (1 + math.cos(math.pi * epoch / t_max)) / (
            1 + math.cos(math.pi * (epoch - 1) / t_max)
        ) * (lr - eta_min) + eta_min
