"""Schedules by epoch: StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR and LinearLR,
with ``torch.optim.lr_scheduler``'s rules."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..._numbers import count, integer, real
from ._base import LRScheduler

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LinearLR", "MultiStepLR", "StepLR"]


def _real(name: str, value: Any) -> float:
    number = real(value)
    if number is None or not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return number


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs
    (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = count("step_size", step_size)
        self.gamma = _real("gamma", gamma)
        super().__init__(optimizer)

    def _next_lr(self, epoch: int, lr: float, base_lr: float) -> float:
        return lr * self.gamma if epoch and epoch % self.step_size == 0 else lr

    def _closed_lr(self, epoch: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each epoch of ``milestones`` (once per
    time it is listed), as ``torch.optim.lr_scheduler.MultiStepLR``."""

    def __init__(self, optimizer: Any, milestones: Iterable[int], gamma: float = 0.1) -> None:
        given_milestones: Any = milestones
        if not isinstance(given_milestones, Iterable) or isinstance(given_milestones, str):
            raise TypeError(f"milestones: expected a sequence of ints, got {milestones!r}")
        listed: list[int] = []
        for given in given_milestones:
            value = integer(given)
            if value is None or value < 0:
                raise ValueError(f"milestones: expected non-negative ints, got {given!r}")
            listed.append(value)
        self.milestones = Counter(listed)
        self.gamma = _real("gamma", gamma)
        super().__init__(optimizer)

    def _next_lr(self, epoch: int, lr: float, base_lr: float) -> float:
        count = self.milestones.get(epoch, 0)
        return lr * self.gamma**count if count else lr

    def _closed_lr(self, epoch: int, base_lr: float) -> float:
        passed = bisect.bisect_right(sorted(self.milestones.elements()), epoch)
        return base_lr * self.gamma**passed


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch
    (``torch.optim.lr_scheduler.ExponentialLR``)."""

    def __init__(self, optimizer: Any, gamma: float) -> None:
        self.gamma = _real("gamma", gamma)
        super().__init__(optimizer)

    def _next_lr(self, epoch: int, lr: float, base_lr: float) -> float:
        return lr if self._initial else lr * self.gamma

    def _closed_lr(self, epoch: int, base_lr: float) -> float:
        return base_lr * self.gamma**epoch


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the initial rate to ``eta_min`` over ``T_max`` epochs
    (``torch.optim.lr_scheduler.CosineAnnealingLR``; past ``T_max`` it rises again, as
    torch's does)."""

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = count("T_max", T_max)
        self.eta_min = _real("eta_min", eta_min)
        super().__init__(optimizer)

    def _next_lr(self, epoch: int, lr: float, base_lr: float) -> float:
        t_max, eta_min = self.T_max, self.eta_min
        if epoch == 0:
            return lr
        if (epoch - 1 - t_max) % (2 * t_max) == 0:
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return (1 + math.cos(math.pi * epoch / t_max)) / (
            1 + math.cos(math.pi * (epoch - 1) / t_max)
        ) * (lr - eta_min) + eta_min

    def _closed_lr(self, epoch: int, base_lr: float) -> float:
        eta_min = self.eta_min
        return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LinearLR(LRScheduler):
    """Scale the learning rate by a factor that moves linearly from ``start_factor`` to
    ``end_factor`` over ``total_iters`` epochs, then stays (torch's
    ``lr_scheduler.LinearLR``: the usual warm-up, with :class:`SequentialLR`).

    Built, it scales the rate by ``start_factor`` at once, as torch's does.
    """

    def __init__(
        self,
        optimizer: Any,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ) -> None:
        start, end = _real("start_factor", start_factor), _real("end_factor", end_factor)
        if not 0 < start <= 1:
            raise ValueError(f"start_factor: expected a value in (0, 1], got {start_factor!r}")
        if not 0 <= end <= 1:
            raise ValueError(f"end_factor: expected a value in [0, 1], got {end_factor!r}")
        self.start_factor, self.end_factor = start, end
        self.total_iters = count("total_iters", total_iters)
        super().__init__(optimizer)

    def _next_lr(self, epoch: int, lr: float, base_lr: float) -> float:
        if epoch == 0:
            return lr * self.start_factor
        if self._initial or epoch > self.total_iters:
            return lr
        change = self.end_factor - self.start_factor
        return lr * (1.0 + change / (self.total_iters * self.start_factor + (epoch - 1) * change))

    def _closed_lr(self, epoch: int, base_lr: float) -> float:
        change = self.end_factor - self.start_factor
        return base_lr * (
            self.start_factor + change * min(self.total_iters, epoch) / self.total_iters
        )
