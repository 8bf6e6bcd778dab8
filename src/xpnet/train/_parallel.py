"""Data-parallel training as ``fit`` sees it: the methods it calls on the communicator it is
handed, and ``fit`` as one process of such a job.

``fit`` knows nothing of MPI: :class:`xpnet.distributed.Communicator` brings its own
sharded loader, step and parameter broadcast through the :class:`DataParallel` methods, so
the import arrows point one way (``train`` never imports ``distributed``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..data import DataLoader
from ..nn import Module
from ..optim import LRScheduler, Optimizer
from ._guard import held_checkpoint

if TYPE_CHECKING:
    from .compile import TrainStep

__all__ = ["DataParallel", "fit_data_parallel", "unwrap_optimizer"]


class DataParallel(Protocol):
    """What ``fit`` and ``evaluate`` need of a data-parallel job's communicator."""

    size: int

    @property
    def is_root(self) -> bool:
        """Whether this process writes checkpoints and logs."""
        ...

    def barrier(self) -> None:
        """Wait until every process gets here."""
        ...

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """The elementwise sum of ``values`` over all processes."""
        ...

    def shard(self, loader: DataLoader) -> Any:
        """This process's share of every batch of ``loader`` (a loader, with ``len`` and
        ``set_epoch``)."""
        ...

    def train_step(
        self,
        model: Module,
        optimizer: Optimizer,
        loss_fn: Callable[..., Any],
        grad_transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Any:
        """A step that averages the gradients over the processes, then applies
        ``grad_transform`` to them, before updating."""
        ...

    def broadcast_parameters(self, model: Module) -> None:
        """Give every process rank 0's parameters and buffers."""
        ...


def unwrap_optimizer(optimizer: Any, comm: Any) -> tuple[Optimizer, Any]:
    """``fit``'s optimizer and communicator: a wrapper that brings its own communicator
    (``DistributedOptimizer``: an ``optimizer`` and a ``comm`` attribute) gives both."""
    inner, own = getattr(optimizer, "optimizer", None), getattr(optimizer, "comm", None)
    if isinstance(optimizer, Optimizer) or not isinstance(inner, Optimizer) or own is None:
        return optimizer, comm
    if comm is not None and comm is not own:
        raise ValueError("comm: differs from the DistributedOptimizer's own; give one")
    return inner, own


def fit_data_parallel(
    run: Callable[..., list[dict[str, float]]],
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
    comm: DataParallel,
    grad_transform: Callable[[dict[str, Any]], Any] | None = None,
) -> list[dict[str, float]]:
    """``fit`` as one process of a data-parallel job (``run`` is ``fit``'s loop): rank 0
    checks, holds and writes the checkpoint and logs; every process resumes from it and
    trains its shares."""
    step: TrainStep = comm.train_step(model, optimizer, loss_fn, grad_transform)
    root = comm.is_root
    if log is not None and root:
        log(f"steps: {step.how}")
    shards = comm.shard(train_loader)
    quiet = None if not root else log
    if path is None or not root:
        # Other ranks never write: their checkpoint path is only read, to resume.
        comm.barrier()  # rank 0 has checked (and holds) the path before anyone reads it
        comm.broadcast_parameters(model)
        return run(model, optimizer, step, shards, epochs, loss_fn, test_loader, scheduler,
                   path, resume, meta, progress and root, quiet, False, comm=comm,
                   write=False)  # fmt: skip
    with held_checkpoint(path, resume, overwrite):
        comm.barrier()
        comm.broadcast_parameters(model)
        return run(model, optimizer, step, shards, epochs, loss_fn, test_loader, scheduler,
                   path, resume, meta, progress, log, False, comm=comm)  # fmt: skip
