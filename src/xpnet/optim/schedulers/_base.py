"""The base of the learning-rate schedules: torch's protocol, so the rates match
``torch.optim.lr_scheduler`` to the bit.

As in torch, a schedule remembers each parameter group's starting rate as
``group["initial_lr"]`` (the first schedule built on an optimizer sets it), takes one step
when it is built (epoch 0: most schedules leave the rate, ``LinearLR`` scales it), and
then one per :meth:`~LRScheduler.step`. Each step derives a group's new rate from its
current one (the "chainable" form); a jump to an epoch (``SequentialLR`` starting the next
schedule) uses the closed form where the schedule has one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..._numbers import real, whole

__all__ = ["MAX_REPLAYED_EPOCHS", "LRScheduler", "param_groups_of"]

#: The most epochs :meth:`LRScheduler.load_state_dict` replays one by one, for a state that
#: keeps its epoch but not its rates.
MAX_REPLAYED_EPOCHS = 10**6


def _rates(state: Mapping[str, Any], plural: str, single: str, groups: int) -> list[float]:
    """A state's rates, one per parameter group, each a finite number >= 0."""
    given = state[plural] if plural in state else [state.get(single)]
    if not isinstance(given, list | tuple) or len(given) != groups:
        raise ValueError(
            f"scheduler state {plural!r}: expected {groups} rate{'s' if groups != 1 else ''} "
            f"(one per parameter group), got {given!r}"
        )
    rates = [real(value) for value in given]
    if any(rate is None or not 0 <= rate < math.inf for rate in rates):
        raise ValueError(f"scheduler state {plural!r}: expected finite numbers >= 0, got {given!r}")
    return [float(rate) for rate in rates if rate is not None]


def param_groups_of(optimizer: Any) -> list[dict[str, Any]]:
    """``optimizer.param_groups``, checked: anything with torch's parameter groups."""
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
    return groups


class LRScheduler:
    """Base class: sets the learning rate of every parameter group, once per
    :meth:`step`.

    Parameters
    ----------
    optimizer
        Anything with torch's ``param_groups`` (a list of dicts with ``"lr"``): an xpnet
        optimizer, or a wrapper such as :class:`xpnet.distributed.DistributedOptimizer`.

    Attributes
    ----------
    per_batch : bool
        Whether the schedule counts optimizer steps rather than epochs (:class:`OneCycleLR`):
        :func:`xpnet.fit` steps it after every batch instead of every epoch.
    """

    per_batch = False

    def __init__(self, optimizer: Any) -> None:
        groups = param_groups_of(optimizer)
        self.optimizer = optimizer
        for group in groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in groups]
        self.last_epoch = -1
        self._initial_step()

    @property
    def base_lr(self) -> float:
        """The first group's initial learning rate."""
        return self.base_lrs[0]

    def _groups(self) -> list[dict[str, Any]]:
        return param_groups_of(self.optimizer)

    def _initial_step(self) -> None:
        """The step a schedule takes when it is built (to epoch 0)."""
        self._initial = True
        try:
            self._advance()
        finally:
            self._initial = False

    # -- the rule -----------------------------------------------------------------------------

    def _next_lr(self, epoch: int, lr: float, base_lr: float) -> float:
        """The rate for ``epoch`` given the rate ``lr`` of the epoch before, for a group
        whose initial rate is ``base_lr`` (the chainable form)."""
        raise NotImplementedError

    def _closed_lr(self, epoch: int, base_lr: float) -> float | None:
        """The rate at ``epoch`` from ``base_lr`` alone, where the schedule has a closed
        form (None otherwise)."""
        return None

    def _chained(self) -> list[float]:
        return [
            self._next_lr(self.last_epoch, float(group["lr"]), base)
            for group, base in zip(self._groups(), self.base_lrs, strict=True)
        ]

    def _advance(self, epoch: int | None = None) -> None:
        """One step (``epoch`` None), or a jump to ``epoch`` (the closed form if any)."""
        if epoch is None:
            self.last_epoch += 1
            rates = self._chained()
        else:
            self.last_epoch = epoch
            closed = [self._closed_lr(epoch, base) for base in self.base_lrs]
            rates = (
                self._chained() if None in closed else [float(c) for c in closed if c is not None]
            )
        for group, rate in zip(self._groups(), rates, strict=True):
            group["lr"] = rate

    def step(self) -> None:
        """Advance one epoch (one batch for a per-batch schedule) and set every group's
        learning rate."""
        self._advance()

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last step, one per group (as in torch)."""
        return [float(group["lr"]) for group in self._groups()]

    # -- state --------------------------------------------------------------------------------

    def _extra_state(self) -> dict[str, Any]:
        """What a subclass needs besides the epoch and the rates (JSON-serialisable)."""
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        return None

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
            **self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the schedule and every group's current learning rate.

        Raises
        ------
        ValueError
            Naming the field, for rates that are not finite numbers >= 0 (one per
            parameter group), an epoch that is not a whole number >= 0, or, in a state
            without its rates, more epochs to replay than :data:`MAX_REPLAYED_EPOCHS`.
        """
        if not isinstance(state, Mapping):
            raise TypeError(
                "state: expected the mapping the scheduler's state_dict() returns, got "
                f"{type(state).__name__}"
            )
        groups = self._groups()
        base_lrs = _rates(state, "base_lrs", "base_lr", len(groups))
        epoch = whole(state.get("last_epoch"))
        if epoch is None or epoch < 0:
            raise ValueError(
                "scheduler state 'last_epoch': expected a whole number >= 0, got "
                f"{state.get('last_epoch')!r}"
            )
        replay = "last_lrs" not in state and "last_lr" not in state
        if replay and epoch > MAX_REPLAYED_EPOCHS:
            raise ValueError(
                f"scheduler state 'last_epoch': {epoch} epochs to replay (the state keeps no "
                f"rates), more than {MAX_REPLAYED_EPOCHS:,}"
            )
        last = None if replay else _rates(state, "last_lrs", "last_lr", len(groups))
        self.base_lrs = base_lrs
        for group, base in zip(groups, base_lrs, strict=True):
            group["initial_lr"] = base
        self._load_extra_state(state)
        self.last_epoch = epoch
        if last is not None:
            for group, lr in zip(groups, last, strict=True):
                group["lr"] = lr
        else:  # replay the schedule (a checkpoint that kept only the epoch)
            target = self.last_epoch
            for group, base in zip(groups, self.base_lrs, strict=True):
                group["lr"] = base
            self.last_epoch = -1
            self._initial_step()
            while self.last_epoch < target:
                self._advance()
