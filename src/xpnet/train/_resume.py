"""The training state a checkpoint keeps for a run to continue: writing it at an epoch's
end, and reading it back with every part checked against the rules its maker applies
(model, optimizer, schedule, random generators, history) before a step is taken."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import random as xrandom
from ..nn import Module
from ..optim import LRScheduler, Optimizer
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    architecture_mismatch,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["resume_run", "save_run"]


def _generators(model: Module) -> dict[str, np.random.Generator]:
    """xpnet's global generator and any a layer holds (e.g. ``Dropout(rng=seed)``)."""
    found = {"global": xrandom.get_rng()}
    for path, module in model.named_modules():
        for name, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found[f"{path}.{name}" if path else name] = value
    return found


def _rng_states(model: Module) -> dict[str, Any]:
    return {key: dict(gen.bit_generator.state) for key, gen in _generators(model).items()}


def _restore_rngs(path: Path, model: Module, states: dict[str, Any]) -> None:
    generators = _generators(model)
    for key, state in states.items():
        if key not in generators:
            raise CheckpointError(
                f"{path}: holds the state of a generator {key!r} this model lacks"
            )
        bit_generator = generators[key].bit_generator
        kind = type(bit_generator).__name__
        problem = _state_problem(state, bit_generator.state, f"rng.{key}")
        if problem is not None:  # checked here: NumPy versions differ in what they accept
            raise CheckpointError(f"{path}: metadata field {problem} (a {kind} state)")
        try:
            bit_generator.state = state
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise CheckpointError(
                f"{path}: metadata field rng.{key} should be a {kind} state: {_text(exc)}"
            ) from None


def _state_problem(found: Any, like: Any, where: str) -> str | None:
    """How ``found`` differs in form from the generator state ``like`` (the same tables,
    names, and whole numbers from 0 to 2**128), or ``None``."""
    if isinstance(like, dict):
        if not isinstance(found, dict) or set(found) != set(like):
            return f"{where} should be a table with {sorted(like)}, found {found!r}"[:300]
        for name, value in like.items():
            problem = _state_problem(found[name], value, f"{where}.{name}")
            if problem is not None:
                return problem
        return None
    if isinstance(like, str):
        return None if found == like else f"{where} should be {like!r}, found {found!r}"
    if isinstance(like, int):
        whole = isinstance(found, int) and not isinstance(found, bool)
        if not whole or not 0 <= found < 2**128:
            return f"{where} should be a whole number from 0 to 2**128, found {found!r}"
    return None


def save_run(
    path: Path,
    model: Module,
    optimizer: Optimizer,
    scheduler: LRScheduler | None,
    epoch: int,
    history: list[dict[str, float]],
    meta: dict[str, Any],
) -> None:
    full_meta = dict(meta)
    full_meta.update(
        {
            "epoch": epoch,
            "history": history,
            "optimizer_class": type(optimizer).__name__,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": _rng_states(model),
        }
    )
    save_checkpoint(path, Checkpoint(model.state_dict(), optimizer.state_dict(), full_meta))


def resume_run(
    path: Path,
    model: Module,
    optimizer: Optimizer,
    scheduler: LRScheduler | None,
    steps_per_epoch: int | None = None,
) -> tuple[int, list[dict[str, float]]]:
    """Load a run's whole state from ``path``, each part checked against the rules its
    constructor applies before anything trains; errors name the file and the field."""
    saved = load_checkpoint(path)
    if "epoch" not in saved.meta or "rng" not in saved.meta:
        raise CheckpointError(
            f"{path}: holds weights but no training state (epoch, random state); it cannot "
            "be resumed"
        )
    kind = saved.meta.get("optimizer_class")
    if kind != type(optimizer).__name__:
        raise CheckpointError(
            f"{path}: was written with optimizer {kind}, resuming with {type(optimizer).__name__}"
        )
    mismatch = architecture_mismatch(model.state_dict(), saved.model)
    if mismatch is not None:
        raise CheckpointError(f"{path}: holds another architecture: {mismatch}")
    try:
        model.load_state_dict(saved.model)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: does not load into this model: {_text(exc)}") from None
    try:
        optimizer.load_state_dict(saved.optimizer)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not fit: {_text(exc)}") from None
    epoch = int(saved.meta["epoch"])
    if scheduler is not None and saved.meta.get("scheduler") is not None:
        _resume_scheduler(path, scheduler, saved.meta["scheduler"], epoch, steps_per_epoch)
    _restore_rngs(path, model, saved.meta["rng"])
    history = [dict(entry) for entry in saved.meta.get("history", [])]
    for index, entry in enumerate(history):
        bad = [k for k, v in entry.items() if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad:
            raise CheckpointError(
                f"{path}: metadata field history[{index}].{bad[0]} should be a number, found "
                f"{entry[bad[0]]!r}"
            )
    return epoch + 1, history


def _resume_scheduler(
    path: Path, scheduler: LRScheduler, state: Any, epoch: int, steps_per_epoch: int | None
) -> None:
    """Restore a scheduler's state, checked first: its step count must be the checkpoint's
    (epochs, or batches for a per-batch schedule), its rates numbers >= 0."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: metadata field scheduler should be a table")
    last = state.get("last_epoch")
    expected: int | None = epoch
    if scheduler.per_batch:  # without the loader's length: any count a run could reach
        per_epoch = steps_per_epoch
        if per_epoch is not None:
            expected = epoch * per_epoch
        else:
            expected = last if isinstance(last, int) and 0 <= last <= 10**12 else None
    if isinstance(last, bool) or not isinstance(last, int) or last != expected:
        raise CheckpointError(
            f"{path}: metadata field scheduler.last_epoch should be {expected} (the steps "
            f"taken by epoch {epoch}), found {last!r}"
        )
    for field in ("base_lrs", "last_lrs"):
        values = state.get(field, [])
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            for v in values
        ):
            raise CheckpointError(
                f"{path}: metadata field scheduler.{field} should list finite rates >= 0, "
                f"found {values!r}"
            )
    try:
        scheduler.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: metadata field scheduler: {_text(exc)}") from None


def _text(exc: BaseException) -> str:
    """An exception's message without the quotes ``KeyError`` adds."""
    return str(exc.args[0]) if len(exc.args) == 1 else str(exc)
