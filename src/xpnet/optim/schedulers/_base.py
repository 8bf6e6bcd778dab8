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

from collections.abc import Mapping
from typing import Any

__all__ = ["LRScheduler", "param_groups_of"]


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
        """Restore the schedule and every group's current learning rate."""
        groups = self._groups()
        base_lrs = [float(v) for v in state.get("base_lrs", [state["base_lr"]])]
        if len(base_lrs) != len(groups):
            raise ValueError(
                f"scheduler state has {len(base_lrs)} parameter groups, the optimizer has "
                f"{len(groups)}"
            )
        self.base_lrs = base_lrs
        for group, base in zip(groups, base_lrs, strict=True):
            group["initial_lr"] = base
        self._load_extra_state(state)
        self.last_epoch = int(state["last_epoch"])
        if "last_lrs" in state or "last_lr" in state:
            last = [float(v) for v in state.get("last_lrs", [state.get("last_lr")])]
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
