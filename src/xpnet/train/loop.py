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

import numpy as np

from .. import functional as F
from ..backends import to_numpy
from ..data import DataLoader
from ..nn import CrossEntropyLoss, Module, NLLLoss
from ..nn.grad import loss_output_and_grads
from ..nn.utils import clip_grad_norm_
from ..optim import LRScheduler, Optimizer, ReduceLROnPlateau
from ._guard import held_checkpoint, resolved
from ._parallel import DataParallel, fit_data_parallel, unwrap_optimizer
from ._resume import resume_run, save_run
from .checkpoint import CheckpointError
from .compile import (
    EagerStep,
    TrainStep,
    compile_evaluation,
    compile_step,
    evaluation_batch,
    output_shape,
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
    return loss_output_and_grads(model, loss_fn, x, target)


def evaluate(
    model: Module,
    loader: DataLoader,
    loss_fn: Callable[..., Any] = F.cross_entropy,
    progress: bool = False,
    compile: bool = False,
    comm: DataParallel | None = None,
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
    compile : bool, default False
        Compile the batch's forward pass, loss and accuracy with ``jax.jit`` on JAX
        (eager elsewhere).

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float, "images_per_second": float}``: the mean loss
        per example, the share of correct argmax predictions, and the throughput.

    Raises
    ------
    ValueError
        If the loader yields no batch.

    Notes
    -----
    The batches' sums stay on the device and are read once, at the end.
    """
    if comm is not None and comm.size > 1:
        loader = comm.shard(loader)
    was_training = model.training
    model.eval()
    batch_sums = compile_evaluation(model, loss_fn) if compile else None
    sums: list[tuple[Any, Any]] = []
    seen = 0
    start = time.perf_counter()
    try:
        for x, target in _bar(loader, "evaluate", progress):
            if batch_sums is None:
                sums.append(evaluation_batch(model, loss_fn, x, target))
            else:
                sums.append(batch_sums(x, target))
            seen += int(target.shape[0])
        total_loss = math.fsum(float(to_numpy(loss)) for loss, _ in sums)
        correct = sum(int(to_numpy(hits)) for _, hits in sums)
        if comm is not None and comm.size > 1:  # every process evaluated its share
            summed = comm.allreduce_sum(np.asarray([total_loss, correct, seen], np.float64))
            total_loss, correct, seen = float(summed[0]), round(summed[1]), round(summed[2])
        if seen == 0:
            raise ValueError("loader: produced no batches to evaluate")
    finally:
        model.train(was_training)
    elapsed = max(time.perf_counter() - start, 1e-9)
    return {
        "loss": total_loss / seen,
        "accuracy": correct / seen,
        "images_per_second": seen / elapsed,
    }


def _bar(iterable: Any, description: str, enabled: bool, total: int | None = None) -> Any:
    if not enabled:
        return iterable
    # Imported by name: tqdm ships no type information.
    tqdm = importlib.import_module("tqdm.auto").tqdm
    # disable=None: no bar when stderr is not a terminal (logs, CI), the epoch lines remain.
    return tqdm(
        iterable, desc=description, total=total, leave=False, dynamic_ncols=True, disable=None
    )


def fit(
    model: Module,
    optimizer: Optimizer | Any,
    train_loader: DataLoader,
    epochs: int,
    *,
    loss_fn: Callable[..., Any] = F.cross_entropy,
    test_loader: DataLoader | None = None,
    scheduler: LRScheduler | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    compile: bool = False,
    comm: DataParallel | None = None,
    clip_grad_norm: float | None = None,
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
        Stepped after every epoch; a per-batch schedule (:class:`~xpnet.optim.OneCycleLR`)
        after every batch; :class:`~xpnet.optim.ReduceLROnPlateau` with the epoch's test
        loss (its training loss without ``test_loader``).
    checkpoint : path-like, optional
        Written atomically after every epoch (safetensors). Held for the run: another
        run asking for the same path fails at once, naming this one. Checked writable
        before training starts; temporary files a killed run left there are removed.
    resume : bool, default False
        Continue from ``checkpoint`` if it exists: model, optimizer, scheduler, random
        state, history and epoch are restored, so the run continues exactly.
    overwrite : bool, default False
        Replace an existing ``checkpoint`` with a fresh run. Without it (and without
        ``resume``), an existing file is an error rather than silently lost.
    meta : dict, optional
        Extra JSON-serialisable facts saved in the checkpoint (e.g. the model's name).
    progress : bool, default True
        Show a tqdm bar with loss, accuracy and images per second (only when stderr is a
        terminal).
    log : callable or None, default print
        Receives one line per epoch (and, with ``compile``, one saying how steps run).
    compile : bool, default False
        Run each step through :func:`xpnet.compile_step`: the backend's compiler
        (``jax.jit``, a CUDA graph on CuPy) where it has one, eagerly elsewhere.
    comm : xpnet.distributed.Communicator, optional
        Train data-parallel over the processes of an MPI job
        (:func:`xpnet.distributed.init`): the replicas start from rank 0's parameters,
        every global batch of ``train_loader`` is split over the processes, the gradients
        are averaged every step, evaluation counts over all processes, and only rank 0
        logs and writes ``checkpoint`` (every process reads it to resume). Steps run
        eagerly (``compile`` is ignored) and each reads its loss and counts back from the
        allreduce. Every process must call ``fit`` alike. A
        :class:`~xpnet.distributed.DistributedOptimizer` as ``optimizer`` brings its own.
    clip_grad_norm : float, optional
        Clip the gradients' total norm to this before every update
        (:func:`xpnet.nn.utils.clip_grad_norm_`, compiled with the step; over all
        processes' averaged gradients with ``comm``).

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
    ValueError
        When a label is not a class index of the model's output (checked once, on the
        host, before training).
    CheckpointError
        Before any training, when ``checkpoint`` cannot be written, is held by another
        run, exists (without ``resume`` or ``overwrite``), or, resumed, already holds
        ``epochs`` epochs or more.

    Notes
    -----
    Steps never wait for the device: the losses and correct counts stay on it and are read
    about every half second (and at the end of each epoch), which is when the progress bar
    updates and a NaN loss is caught; the epoch and step named are the first with a
    non-finite loss.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: expected a positive int, got {epochs!r}")
    transform = _clipping(clip_grad_norm)
    optimizer, comm = unwrap_optimizer(optimizer, comm)
    if optimizer.model is not model:
        raise ValueError("optimizer: was built for a different model")
    if loss_fn in (F.cross_entropy, F.nll_loss) or isinstance(loss_fn, CrossEntropyLoss | NLLLoss):
        _check_labels(model, [train_loader, test_loader])
    path = resolved(Path(checkpoint)) if checkpoint is not None else None
    if resume and path is None:
        raise ValueError("resume: needs a checkpoint path")
    if comm is not None and comm.size > 1:
        return fit_data_parallel(
            _fit, model, optimizer, train_loader, epochs, loss_fn, test_loader, scheduler,
            path, resume, overwrite, meta, progress, log, comm, transform,
        )  # fmt: skip
    step: TrainStep = (
        compile_step(model, optimizer, loss_fn, grad_transform=transform)
        if compile
        else EagerStep(model, optimizer, loss_fn, "compile=False", transform)
    )
    if compile and log is not None:
        log(f"steps: {step.how}")
    if path is None:
        return _fit(model, optimizer, step, train_loader, epochs, loss_fn, test_loader,
                    scheduler, None, False, meta, progress, log, compile)  # fmt: skip
    with held_checkpoint(path, resume, overwrite):
        return _fit(model, optimizer, step, train_loader, epochs, loss_fn, test_loader,
                    scheduler, path, resume, meta, progress, log, compile)  # fmt: skip


def _clipping(max_norm: float | None) -> Callable[[dict[str, Any]], Any] | None:
    """``fit``'s ``clip_grad_norm`` as a transform of the gradients."""
    if max_norm is None:
        return None
    if isinstance(max_norm, bool) or not isinstance(max_norm, int | float) or not max_norm > 0:
        raise ValueError(f"clip_grad_norm: expected a positive number, got {max_norm!r}")
    limit = float(max_norm)
    return lambda grads: clip_grad_norm_(grads, limit)


def _fit(
    model: Module,
    optimizer: Optimizer,
    step: TrainStep,
    train_loader: DataLoader | Any,
    epochs: int,
    loss_fn: Callable[..., Any],
    test_loader: DataLoader | None,
    scheduler: LRScheduler | None,
    path: Path | None,
    resume: bool,
    meta: dict[str, Any] | None,
    progress: bool,
    log: Callable[[str], None] | None,
    compile: bool,
    *,
    comm: DataParallel | None = None,
    write: bool = True,
) -> list[dict[str, float]]:
    """:func:`fit` once its arguments are checked and its checkpoint path held (``write``:
    this process saves it)."""
    history: list[dict[str, float]] = []
    first_epoch = 1
    saved_epoch: int | None = None
    if resume and path is not None and path.is_file():
        steps = len(train_loader) if hasattr(train_loader, "__len__") else None
        first_epoch, history = resume_run(path, model, optimizer, scheduler, steps)
        saved_epoch = first_epoch - 1
        if first_epoch > epochs:
            raise CheckpointError(
                f"{path}: already holds {saved_epoch} epochs, so resuming to epochs={epochs} "
                f"would train nothing; ask for more epochs (e.g. {saved_epoch + 1})"
            )
        if log is not None:
            log(f"resumed from {path} after epoch {saved_epoch}")
    for epoch in range(first_epoch, epochs + 1):
        train_loader.set_epoch(epoch)
        per_batch = scheduler if scheduler is not None and scheduler.per_batch else None
        try:
            record = _train_epoch(model, step, train_loader, epoch, epochs, progress, per_batch)
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
            result = evaluate(model, test_loader, loss_fn, compile=compile, comm=comm)
            record["test_loss"], record["test_accuracy"] = result["loss"], result["accuracy"]
        record["lr"] = optimizer.lr
        if isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step(record.get("test_loss", record["loss"]))
        elif scheduler is not None and not scheduler.per_batch:
            scheduler.step()
        history.append(record)
        if path is not None and write:
            save_run(path, model, optimizer, scheduler, epoch, history, meta or {})
        if path is not None:
            saved_epoch = epoch
        if log is not None:
            log(_describe(record, epochs))
    return history


# How often a training loop reads its losses back from the device: every this many
# seconds, or this many steps (which bounds the arrays waiting to be read).
READ_EVERY_SECONDS = 0.5
READ_EVERY_STEPS = 100


class _Totals:
    """An epoch's loss, correct predictions and examples, read from the device in blocks."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.loss = 0.0
        self.correct = 0
        self.seen = 0
        self.pending: list[tuple[int, Any, Any, int]] = []  # (step, loss, correct, batch)

    def add(self, step: int, loss: Any, correct: Any, batch: int) -> None:
        self.pending.append((step, loss, correct, batch))

    def read(self) -> None:
        """Bring the pending steps' values to the host (one sync); stop at a NaN loss."""
        if not self.pending:
            return
        # One value at a time: the first read waits for the device, the rest are ready
        # (and stacking a new number of them would compile anew on JAX).
        losses = [float(to_numpy(p[1])) for p in self.pending]
        corrects = [int(to_numpy(p[2])) for p in self.pending]
        for (step, _, _, batch), loss, correct in zip(self.pending, losses, corrects, strict=True):
            if not math.isfinite(loss):
                self.pending = []
                raise TrainingDiverged(f"loss became {loss} at epoch {self.epoch}, step {step}")
            self.loss += loss * batch
            self.correct += correct
            self.seen += batch
        self.pending = []


def _train_epoch(
    model: Module,
    step: TrainStep,
    loader: DataLoader | Any,
    epoch: int,
    epochs: int,
    progress: bool,
    scheduler: LRScheduler | None = None,
) -> dict[str, float]:
    totals = _Totals(epoch)
    start = last_read = time.perf_counter()
    # Advanced by hand: an exhausted tqdm iterator closes its bar before the last read.
    bar = _bar(None, f"epoch {epoch}/{epochs}", progress, total=len(loader))
    index = 0
    try:
        for index, (x, target) in enumerate(loader, start=1):
            loss, correct = step.run(x, target)
            if scheduler is not None:  # a per-batch schedule (OneCycleLR)
                scheduler.step()
            # A data-parallel step reports over all processes' shares of the batch.
            examples = getattr(step, "examples", None)
            totals.add(index, loss, correct, examples or int(target.shape[0]))
            if progress:
                bar.update()
            now = time.perf_counter()
            if now - last_read >= READ_EVERY_SECONDS or len(totals.pending) >= READ_EVERY_STEPS:
                totals.read()
                last_read = now
                if progress:
                    _show(bar, totals, now - start)
        totals.read()
        if progress:
            _show(bar, totals, time.perf_counter() - start)
    finally:
        if progress:
            bar.close()
    if index == 0:
        raise ValueError(
            f"train_loader: produced no batches in epoch {epoch} (fewer examples than "
            "batch_size with drop_last?)"
        )
    # A finite loss can still come with an overflowing update: never checkpoint NaN weights.
    broken = _non_finite(model)
    if broken:
        raise TrainingDiverged(
            f"parameters {broken} became non-finite at epoch {epoch}, step {index}"
        )
    elapsed = time.perf_counter() - start
    return {
        "epoch": epoch,
        "loss": totals.loss / max(totals.seen, 1),
        "accuracy": totals.correct / max(totals.seen, 1),
        "images_per_second": totals.seen / max(elapsed, 1e-9),
        "seconds": elapsed,
    }


def _show(bar: Any, totals: _Totals, elapsed: float) -> None:
    if totals.seen:
        bar.set_postfix(
            loss=f"{totals.loss / totals.seen:.4f}",
            acc=f"{totals.correct / totals.seen:.4f}",
            img_s=f"{totals.seen / max(elapsed, 1e-9):,.0f}",
        )


def _check_labels(model: Module, loaders: list[DataLoader | None]) -> None:
    """Every label a class index of the model's output: checked once on the host, so the
    steps need not read the device to check their targets."""
    present = [loader for loader in loaders if loader is not None and len(loader.dataset)]
    if not present:
        return
    first = present[0]
    x, _ = first.to_backend(first.dataset.images[:1], first.dataset.labels[:1])
    was_training = model.training
    model.eval()
    try:
        shape = output_shape(model, x)
    finally:
        model.train(was_training)
    if len(shape) < 2:
        return
    classes = int(shape[1])
    for loader in present:
        labels = np.asarray(loader.dataset.labels)
        bad = np.unique(labels[(labels < 0) | (labels >= classes)])
        if bad.size:
            shown = ", ".join(str(v) for v in bad[:5]) + (", ..." if bad.size > 5 else "")
            raise ValueError(
                f"{loader.dataset.name}: labels must be class indices in [0, {classes}) "
                f"(the model has {classes} outputs), got {shown}"
            )


def _non_finite(model: Module) -> list[str]:
    """Parameters holding a NaN or an infinity, checked on the host (a checkpoint copies
    them there anyway)."""
    return [
        name for name, value in model.named_parameters() if not np.isfinite(to_numpy(value)).all()
    ]


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
