"""``fit`` as one process of a data-parallel job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data import DataLoader
from ..nn import Module
from ..optim import LRScheduler, Optimizer
from ..train._guard import held_checkpoint
from ..train.loop import _fit
from ._comm import Communicator
from ._shard import ShardedLoader
from ._step import DistributedStep
from ._sync import broadcast_parameters

__all__ = ["fit_data_parallel"]


def fit_data_parallel(
    model: Module,
    optimizer: Optimizer,
    train_loader: DataLoader,
    epochs: int,
    loss_fn: Callable[..., Any],
    test_loader: DataLoader | None,
    scheduler: LRScheduler | None,
    path: Path | None,
    resume: bool,
    overwrite: bool,
    meta: dict[str, Any] | None,
    progress: bool,
    log: Callable[[str], None] | None,
    comm: Communicator,
) -> list[dict[str, float]]:
    """:func:`fit` as one process of a data-parallel job: rank 0 checks, holds and writes
    the checkpoint and logs; every process resumes from it and trains its shares."""
    step = DistributedStep(model, optimizer, loss_fn, comm)
    root = comm.is_root
    if log is not None and root:
        log(f"steps: {step.how}")
    shards = ShardedLoader(train_loader, comm)
    quiet = None if not root else log
    if path is None or not root:
        # Other ranks never write: their checkpoint path is only read, to resume.
        comm.barrier()  # rank 0 has checked (and holds) the path before anyone reads it
        broadcast_parameters(model, comm)
        return _fit(model, optimizer, step, shards, epochs, loss_fn, test_loader, scheduler,
                    path, resume, meta, progress and root, quiet, False, comm=comm,
                    write=False)  # fmt: skip
    with held_checkpoint(path, resume, overwrite):
        comm.barrier()
        broadcast_parameters(model, comm)
        return _fit(model, optimizer, step, shards, epochs, loss_fn, test_loader, scheduler,
                    path, resume, meta, progress, log, False, comm=comm)  # fmt: skip
