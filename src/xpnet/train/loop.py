"""The training loop: epochs of forward, backward and optimizer steps, with a progress bar,
per-epoch evaluation, atomic checkpoints and exact resumption."""

from __future__ import annotations

import importlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import array_api_compat
import numpy as np

from .. import functional as F
from .. import random as xrandom
from ..data import DataLoader
from ..nn import Module
from ..nn.module import forward_vjp
from ..optim import LRScheduler, Optimizer
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    architecture_mismatch,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["TrainingDiverged", "evaluate", "fit", "train_step"]


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


def train_step(
    model: Module, loss_fn: Callable[..., Any], x: Any, target: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """One forward and backward pass in training mode.

    Parameters
    ----------
    model : Module
        Put in training mode.
    loss_fn : callable
        An op with a pullback, called as ``loss_fn(output, target)``, giving a scalar.
    x, target : array
        One batch.

    Returns
    -------
    loss : array
        Scalar loss.
    output : array
        The model's output (e.g. logits), for metrics.
    grads : dict
        Gradients keyed like the model's parameters.
    """
    model.train()
    output, model_pullback = forward_vjp(model, x, input_grad=False)
    loss, loss_pullback = F.vjp(loss_fn, output, target)
    xp = array_api_compat.array_namespace(loss)
    _, grads = model_pullback(loss_pullback(xp.ones_like(loss))[0])
    return loss, output, grads


def _correct(output: Any, target: Any) -> int:
    xp = array_api_compat.array_namespace(output)
    return int(xp.sum(xp.astype(xp.argmax(output, axis=1) == target, xp.int64)))


def evaluate(
    model: Module,
    loader: DataLoader,
    loss_fn: Callable[..., Any] = F.cross_entropy,
    progress: bool = False,
) -> dict[str, float]:
    """Average loss and accuracy of ``model`` (in inference mode) over ``loader``.

    Parameters
    ----------
    model : Module
        Run in inference mode (dropout off, batch norm on running statistics); its
        previous mode is restored afterwards.
    loader : DataLoader
        The batches to evaluate (every example once).
    loss_fn : callable, default ``F.cross_entropy``
        Called as ``loss_fn(output, target, reduction="sum")``.
    progress : bool, default False
        Show a tqdm bar (only when stderr is a terminal).

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float, "images_per_second": float}``: the mean loss
        per example, the share of correct argmax predictions, and the throughput.

    Raises
    ------
    ValueError
        If the loader yields no batch.
    """
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    try:
        for x, target in _bar(loader, "evaluate", progress):
            output = model(x)
            total_loss += float(loss_fn(output, target, reduction="sum"))
            correct += _correct(output, target)
            seen += int(target.shape[0])
    finally:
        model.train(was_training)
    elapsed = max(time.perf_counter() - start, 1e-9)
    if seen == 0:
        raise ValueError("loader: produced no batches to evaluate")
    return {
        "loss": total_loss / seen,
        "accuracy": correct / seen,
        "images_per_second": seen / elapsed,
    }


def _bar(iterable: Any, description: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    # Imported by name: tqdm ships no type information.
    tqdm = importlib.import_module("tqdm.auto").tqdm
    # disable=None: no bar when stderr is not a terminal (logs, CI), the epoch lines remain.
    return tqdm(iterable, desc=description, leave=False, dynamic_ncols=True, disable=None)


def _generators(model: Module) -> dict[str, np.random.Generator]:
    """xpnet's global generator and any a layer holds (e.g. ``Dropout(rng=seed)``)."""
    found = {"global": xrandom.get_rng()}
    for path, module in model.modules():
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
        generators[key].bit_generator.state = state


def fit(
    model: Module,
    optimizer: Optimizer,
    train_loader: DataLoader,
    epochs: int,
    *,
    loss_fn: Callable[..., Any] = F.cross_entropy,
    test_loader: DataLoader | None = None,
    scheduler: LRScheduler | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> list[dict[str, float]]:
    """Train ``model`` for ``epochs`` epochs.

    Parameters
    ----------
    model, optimizer : Module, Optimizer
        The optimizer must have been built from ``model``.
    train_loader : DataLoader
        Training batches (shuffled per epoch if the loader says so).
    epochs : int
        Total number of epochs (a resumed run continues up to this number).
    loss_fn : callable, default ``F.cross_entropy``
        An op with a pullback, called as ``loss_fn(output, target)``.
    test_loader : DataLoader, optional
        Evaluated after every epoch.
    scheduler : LRScheduler, optional
        Stepped after every epoch.
    checkpoint : path-like, optional
        Written atomically after every epoch (safetensors).
    resume : bool, default False
        Continue from ``checkpoint`` if it exists: model, optimizer, scheduler, random
        state, history and epoch are restored, so the run continues exactly.
    meta : dict, optional
        Extra JSON-serialisable facts saved in the checkpoint (e.g. the model's name).
    progress : bool, default True
        Show a tqdm bar with loss, accuracy and images per second (only when stderr is a
        terminal).
    log : callable or None, default print
        Receives one line per epoch.

    Returns
    -------
    list of dict
        One entry per epoch: ``epoch``, ``loss``, ``accuracy``, ``images_per_second``,
        ``seconds``, ``lr`` and, with a test loader, ``test_loss`` and ``test_accuracy``.

    Raises
    ------
    TrainingDiverged
        When the loss becomes NaN or infinite; the message names the epoch and step, and
        the last checkpoint written is left as it was.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: expected a positive int, got {epochs!r}")
    if optimizer.model is not model:
        raise ValueError("optimizer: was built for a different model")
    history: list[dict[str, float]] = []
    first_epoch = 1
    saved_epoch: int | None = None
    path = Path(checkpoint) if checkpoint is not None else None
    if resume:
        if path is None:
            raise ValueError("resume: needs a checkpoint path")
        if path.is_file():
            first_epoch, history = _resume(path, model, optimizer, scheduler)
            saved_epoch = first_epoch - 1
            if log is not None:
                log(f"resumed from {path} after epoch {first_epoch - 1}")
    for epoch in range(first_epoch, epochs + 1):
        train_loader.set_epoch(epoch)
        try:
            record = _train_epoch(model, optimizer, train_loader, loss_fn, epoch, epochs, progress)
        except TrainingDiverged as exc:
            if path is None:
                kept = "no checkpoint is written without a checkpoint path"
            elif saved_epoch is not None:
                kept = f"{path} still holds the weights after epoch {saved_epoch}"
            elif path.is_file():
                kept = f"{path} was left as it was"
            else:
                kept = f"nothing was written to {path}"
            raise TrainingDiverged(f"{exc}; training stopped and {kept}") from None
        if test_loader is not None:
            result = evaluate(model, test_loader, loss_fn)
            record["test_loss"], record["test_accuracy"] = result["loss"], result["accuracy"]
        record["lr"] = optimizer.lr
        if scheduler is not None:
            scheduler.step()
        history.append(record)
        if path is not None:
            _save(path, model, optimizer, scheduler, epoch, history, meta or {})
            saved_epoch = epoch
        if log is not None:
            log(_describe(record, epochs))
    return history


def _train_epoch(
    model: Module,
    optimizer: Optimizer,
    loader: DataLoader,
    loss_fn: Callable[..., Any],
    epoch: int,
    epochs: int,
    progress: bool,
) -> dict[str, float]:
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = _bar(loader, f"epoch {epoch}/{epochs}", progress)
    step = 0
    try:
        for step, (x, target) in enumerate(bar, start=1):
            loss, output, grads = train_step(model, loss_fn, x, target)
            value = float(loss)
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss became {value} at epoch {epoch}, step {step}")
            optimizer.step(grads)
            batch = int(target.shape[0])
            total_loss += value * batch
            correct += _correct(output, target)
            seen += batch
            if progress:
                rate = seen / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(
                    loss=f"{total_loss / seen:.4f}",
                    acc=f"{correct / seen:.4f}",
                    img_s=f"{rate:,.0f}",
                )
    finally:
        if progress:
            bar.close()
    if seen == 0:
        raise ValueError(
            f"train_loader: produced no batches in epoch {epoch} (fewer examples than "
            "batch_size with drop_last?)"
        )
    # A finite loss can still come with an overflowing update: never checkpoint NaN weights.
    broken = _non_finite(model)
    if broken:
        raise TrainingDiverged(
            f"parameters {broken} became non-finite at epoch {epoch}, step {step}"
        )
    elapsed = time.perf_counter() - start
    return {
        "epoch": epoch,
        "loss": total_loss / max(seen, 1),
        "accuracy": correct / max(seen, 1),
        "images_per_second": seen / max(elapsed, 1e-9),
        "seconds": elapsed,
    }


def _non_finite(model: Module) -> list[str]:
    names = []
    for name, value in model.named_parameters().items():
        xp = array_api_compat.array_namespace(value)
        if not bool(xp.all(xp.isfinite(value))):
            names.append(name)
    return names


def _describe(record: dict[str, float], epochs: int) -> str:
    text = (
        f"epoch {int(record['epoch'])}/{epochs}: loss {record['loss']:.4f}, "
        f"accuracy {record['accuracy']:.4f}"
    )
    if "test_accuracy" in record:
        text += (
            f", test loss {record['test_loss']:.4f}, test accuracy {record['test_accuracy']:.4f}"
        )
    return text + f", {record['images_per_second']:,.0f} images/s, {record['seconds']:.1f} s"


def _save(
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


def _resume(
    path: Path, model: Module, optimizer: Optimizer, scheduler: LRScheduler | None
) -> tuple[int, list[dict[str, float]]]:
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
    if scheduler is not None and saved.meta.get("scheduler") is not None:
        scheduler.load_state_dict(saved.meta["scheduler"])
    _restore_rngs(path, model, saved.meta["rng"])
    history = [dict(entry) for entry in saved.meta.get("history", [])]
    return int(saved.meta["epoch"]) + 1, history


def _text(exc: BaseException) -> str:
    """An exception's message without the quotes ``KeyError`` adds."""
    return str(exc.args[0]) if len(exc.args) == 1 else str(exc)
