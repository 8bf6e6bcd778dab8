"""Schedules that follow other signals: SequentialLR (one schedule after another),
OneCycleLR (per batch) and ReduceLROnPlateau (from a metric), with torch's rules."""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..._numbers import count as _count
from ..._numbers import real, whole
from ._base import LRScheduler, param_groups_of

__all__ = ["OneCycleLR", "ReduceLROnPlateau", "SequentialLR"]


def _undo(scheduler: Any) -> None:
    """One step back in every schedule below ``scheduler`` (SequentialLR's reset)."""
    inner = getattr(scheduler, "_schedulers", None)
    if inner is not None:
        for child in inner:
            _undo(child)
    elif hasattr(scheduler, "last_epoch"):
        scheduler.last_epoch -= 1


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at the epochs of ``milestones``
    (``torch.optim.lr_scheduler.SequentialLR``): the usual ``LinearLR`` warm-up followed
    by a decay. At a switch the next schedule starts from its epoch 0.

    Parameters
    ----------
    optimizer
        The optimizer every schedule of ``schedulers`` was built on.
    schedulers : sequence of LRScheduler
        Built on ``optimizer``; not :class:`ReduceLROnPlateau` (it needs a metric).
    milestones : sequence of int
        One fewer than ``schedulers``, increasing.
    """

    def __init__(
        self, optimizer: Any, schedulers: Sequence[LRScheduler], milestones: Sequence[int]
    ) -> None:
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers:
            raise ValueError("schedulers: expected at least one schedule")
        for index, scheduler in enumerate(schedulers):
            if isinstance(scheduler, ReduceLROnPlateau) or not isinstance(scheduler, LRScheduler):
                raise TypeError(
                    f"schedulers[{index}]: expected an epoch schedule, got "
                    f"{type(scheduler).__name__} (ReduceLROnPlateau needs a metric)"
                )
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"schedulers[{index}]: was built on another optimizer")
        if len(milestones) != len(schedulers) - 1 or milestones != sorted(milestones):
            raise ValueError(
                f"milestones: expected {len(schedulers) - 1} increasing epochs (one fewer than "
                f"the schedules), got {milestones!r}"
            )
        self._schedulers, self._milestones = schedulers, milestones
        self.optimizer = optimizer
        groups = param_groups_of(optimizer)
        self.base_lrs = [float(group["initial_lr"]) for group in groups]
        for group in groups:  # the schedules' own first steps are undone
            group["lr"] = group["initial_lr"]
        _undo(self)
        self.last_epoch = 0
        self._initial = False
        self._schedulers[bisect.bisect_right(milestones, 0)]._initial_step()

    def _advance(self, epoch: int | None = None) -> None:
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        index = bisect.bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._advance(0)
        else:
            scheduler._advance()

    def _extra_state(self) -> dict[str, Any]:
        return {"schedulers": [s.state_dict() for s in self._schedulers]}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        saved = state.get("schedulers", [])
        if len(saved) != len(self._schedulers):
            raise ValueError(
                f"scheduler state holds {len(saved)} schedules, this SequentialLR has "
                f"{len(self._schedulers)}"
            )
        for scheduler, entry in zip(self._schedulers, saved, strict=True):
            scheduler.load_state_dict(entry)


def _per_group(name: str, value: Any, count: int) -> list[float]:
    values = list(value) if isinstance(value, list | tuple) else [value] * count
    if len(values) != count:
        raise ValueError(f"{name}: expected {count} values (one per group), got {len(values)}")
    return [float(v) for v in values]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2017), stepped after every batch, as
    ``torch.optim.lr_scheduler.OneCycleLR``: the rate rises from ``max_lr / div_factor``
    to ``max_lr`` over ``pct_start`` of the steps, then anneals to
    ``max_lr / div_factor / final_div_factor``; momentum (SGD's, RMSprop's) or Adam's
    ``beta1`` moves the opposite way when ``cycle_momentum``.

    Parameters
    ----------
    optimizer
    max_lr : float or list of float
        Per group, or one for all.
    total_steps : int, optional
        Or ``epochs`` and ``steps_per_epoch``.
    pct_start, anneal_strategy, cycle_momentum, base_momentum, max_momentum, div_factor,
    final_div_factor, three_phase
        As in torch.

    Notes
    -----
    :func:`xpnet.fit` steps it after every batch (``per_batch``). A compiled step takes
    the rate as an input; a changing momentum is compiled in, so with ``cycle_momentum``
    a JAX step is traced again at every step: give ``cycle_momentum=False`` there.
    """

    per_batch = True

    def __init__(
        self,
        optimizer: Any,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        groups = param_groups_of(optimizer)
        if total_steps is not None:
            self.total_steps = _count("total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = _count("epochs", epochs, 1) * _count(
                "steps_per_epoch", steps_per_epoch, 1
            )
        else:
            raise ValueError("total_steps: give it, or both epochs and steps_per_epoch")
        if not isinstance(pct_start, float) or not 0.0 <= pct_start <= 1.0:
            raise ValueError(f"pct_start: expected a float in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"anneal_strategy: expected 'cos' or 'linear', got {anneal_strategy!r}"
            )
        self.anneal_strategy = anneal_strategy
        steps = float(self.total_steps)
        if three_phase:
            self._phases = [
                (pct_start * steps - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (2 * pct_start * steps - 2, "max_lr", "initial_lr", "base_momentum",
                 "max_momentum"),
                (steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]  # fmt: skip
        else:
            self._phases = [
                (pct_start * steps - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        for group, peak in zip(groups, _per_group("max_lr", max_lr, len(groups)), strict=True):
            group["initial_lr"] = peak / div_factor
            group["max_lr"] = peak
            group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" in defaults:
                self._momentum_key = "momentum"
            elif "beta1" in defaults:
                self._momentum_key = "beta1"
            else:
                raise ValueError(
                    "cycle_momentum: the optimizer has no momentum or beta1 to cycle; give "
                    "cycle_momentum=False"
                )
            highs = _per_group("max_momentum", max_momentum, len(groups))
            lows = _per_group("base_momentum", base_momentum, len(groups))
            for group, high, low in zip(groups, highs, lows, strict=True):
                group[self._momentum_key] = high
                group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _chained(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"OneCycleLR: stepped {step} times; it was built for total_steps={self.total_steps}"
            )
        rates = []
        for group in self._groups():
            start = 0.0
            for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    rates.append(self._anneal(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum:
                        group[self._momentum_key] = self._anneal(group[m_from], group[m_to], pct)
                    break
                start = end
        return rates


class ReduceLROnPlateau(LRScheduler):
    """Divide the learning rate by ``1 / factor`` when a metric stops improving for
    ``patience`` epochs (``torch.optim.lr_scheduler.ReduceLROnPlateau``): call
    ``step(metric)``; :func:`xpnet.fit` passes the test loss (the training loss without a
    test loader).

    Parameters
    ----------
    optimizer
    mode : {'min', 'max'}, default 'min'
    factor : float, default 0.1
        In (0, 1).
    patience, threshold, threshold_mode, cooldown, min_lr, eps
        As in torch (``min_lr`` per group or one for all).
    """

    def __init__(
        self,
        optimizer: Any,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        groups = param_groups_of(optimizer)
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode: expected 'rel' or 'abs', got {threshold_mode!r}")
        if not 0 < (real(factor) or 0) < 1:
            raise ValueError(f"factor: expected a value in (0, 1), got {factor!r}")
        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor, self.threshold, self.eps = float(factor), float(threshold), float(eps)
        self.patience = _count("patience", patience, 0)
        self.cooldown = _count("cooldown", cooldown, 0)
        self.min_lrs = _per_group("min_lr", min_lr, len(groups))
        for group in groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in groups]
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _better(self, value: float, best: float) -> bool:
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return value < best * (1.0 - self.threshold)
            return value < best - self.threshold
        if self.threshold_mode == "rel":
            return value > best * (1.0 + self.threshold)
        return value > best + self.threshold

    def step(self, metrics: Any = None) -> None:
        """One epoch with ``metrics`` (a number, or a 0-d array read on the host)."""
        if metrics is None:
            raise TypeError("ReduceLROnPlateau.step: expected the metric, e.g. the test loss")
        current = float(metrics)
        self.last_epoch += 1
        if self._better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(self._groups(), self.min_lrs, strict=True):
                old = float(group["lr"])
                new = max(old * self.factor, floor)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def _extra_state(self) -> dict[str, Any]:
        # JSON has no infinity: a best not yet set is null.
        best = None if math.isinf(self.best) else self.best
        return {"best": best, "num_bad_epochs": self.num_bad_epochs,
                "cooldown_counter": self.cooldown_counter}  # fmt: skip

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        best = state.get("best")
        value = real(best) if best is not None else (math.inf if self.mode == "min" else -math.inf)
        if value is None or math.isnan(value):
            raise ValueError(f"scheduler state 'best': expected a number, got {best!r}")
        counts = {}
        for name in ("num_bad_epochs", "cooldown_counter"):
            count = whole(state.get(name, 0))
            if count is None or count < 0:
                raise ValueError(
                    f"scheduler state {name!r}: expected a whole number >= 0, got "
                    f"{state.get(name)!r}"
                )
            counts[name] = count
        self.best = value
        self.num_bad_epochs, self.cooldown_counter = (
            counts["num_bad_epochs"],
            counts["cooldown_counter"],
        )
