"""The communicator: which process this is, how many there are, and the two collectives
data-parallel training needs (a sum over all processes, and a broadcast from one).

A sum runs where its buffer lives when it can: on NumPy memory and torch CPU tensors (seen
as NumPy arrays) in place over MPI, on CUDA memory over NCCL; anything else goes through a
copy in host memory, the path every backend has."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from ._nccl import cuda_device_index
from ._route import Route, agree_route, check_flat_float64, host_view

__all__ = ["Communicator", "init", "pick_device"]

#: How :meth:`Communicator.allreduce_sum_` moved its buffer (``Communicator.last_path``).
IN_PLACE, OVER_NCCL, THROUGH_HOST, ALONE = "MPI in place", "NCCL", "MPI through host", "alone"

_INSTALL = "pip install mpi4py mpich (the mpi extra: mpi4py)"


@dataclass
class Communicator:
    """The processes of one data-parallel job (SPMD, as ``mpiexec`` starts them).

    Attributes
    ----------
    rank : int
        This process, from 0.
    size : int
        How many processes take part.
    local_rank : int
        This process among those on the same machine: the GPU it should use.
    """

    rank: int
    size: int
    local_rank: int
    _mpi: Any = None  # an mpi4py communicator, or None for a single process
    #: How the last gradient sum moved its buffer (:meth:`allreduce_sum_`, or
    #: :func:`allreduce_mean` through the host): one of this module's constants.
    last_path: str = field(default="", compare=False)
    _route: Route | None = field(default=None, repr=False)

    @property
    def is_root(self) -> bool:
        """Rank 0: the process that writes checkpoints and logs."""
        return self.rank == 0

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """The elementwise sum of ``values`` over all processes, as a new array (never the
        communication buffer itself: whoever keeps the result may hold it for long)."""
        values = np.asarray(values, order="C")  # not ascontiguousarray: it makes 0-d 1-d
        if self._mpi is None or self.size == 1:
            return values.copy()
        total = np.empty_like(values)
        self._mpi.Allreduce(values, total)
        return total

    def allreduce_sum_(self, buffer: Any) -> None:
        """Sum a contiguous 1-d float64 buffer over all processes, in place.

        NumPy arrays and torch CPU tensors (a NumPy view of their memory) are summed by MPI
        where they are; CuPy arrays and torch CUDA tensors by NCCL on their GPU when every
        process has NCCL and a GPU of its own; anything else is copied to the host, summed
        and copied back. The processes choose together at the first call (a collective),
        and later buffers must live where the first did. ``last_path`` says what happened.

        Raises
        ------
        TypeError
            If ``buffer`` is not a contiguous 1-d float64 array.
        ValueError
            If this job sums over NCCL and ``buffer`` is not on its GPU.
        """
        check_flat_float64(buffer)
        if self._mpi is None or self.size == 1:
            self.last_path = ALONE
            return
        from mpi4py import MPI

        if self._route is None:
            self._route = agree_route(self._mpi, self.rank, self.size, buffer)
        route = self._route
        if route.nccl is not None:
            index = cuda_device_index(buffer)
            if index != route.device_index:
                where = "host memory" if index is None else f"GPU {index}"
                raise ValueError(
                    f"buffer: expected a CUDA array on GPU {route.device_index}, where this "
                    f"job sums over NCCL, got one in {where}"
                )
            route.nccl.sum_(buffer)
            self.last_path = OVER_NCCL
            return
        host = host_view(buffer)
        if host is not None:
            self._mpi.Allreduce(MPI.IN_PLACE, host)
            self.last_path = IN_PLACE
            return
        from .. import backends

        staged = np.array(backends.to_numpy(buffer), dtype=np.float64, copy=True)
        self._mpi.Allreduce(MPI.IN_PLACE, staged)
        xp = array_api_compat.array_namespace(buffer)
        buffer[...] = xp.asarray(staged, device=array_api_compat.device(buffer))
        self.last_path = THROUGH_HOST

    def device_for(self, backend: str, requested: Any = None) -> Any:
        """The device this process should train on with ``backend``: see :func:`pick_device`."""
        return pick_device(backend, requested, self.local_rank, _gpu_count(backend))

    def broadcast(self, values: np.ndarray, root: int = 0) -> np.ndarray:
        """``values`` as process ``root`` holds them, on every process (a new array)."""
        buffer = np.array(values, order="C", copy=True)
        if self._mpi is not None and self.size > 1:
            self._mpi.Bcast(buffer, root=root)
        return buffer

    def agree(self, what: str, settings: dict[str, Any]) -> None:
        """Check, before the first collective of the work, that every process runs with the
        same ``settings`` (JSON-able): each process learns every other's, so all of them
        stop together with one message naming the ranks and fields that differ, rather
        than deadlock in a collective that the others call with other shapes or counts.

        Raises
        ------
        ValueError
            On every process, when any two disagree.
        """
        if self._mpi is None or self.size == 1:
            return
        mine = json.dumps(settings, sort_keys=True, default=str)
        everyone = self._mpi.allgather(mine)
        if all(text == everyone[0] for text in everyone):
            return
        tables = [json.loads(text) for text in everyone]
        differ = []
        for rank, table in enumerate(tables[1:], start=1):
            keys = sorted(set(table) | set(tables[0]))
            for key in keys:
                if table.get(key) != tables[0].get(key):
                    differ.append(
                        f"{key} is {tables[0].get(key)!r} on rank 0, {table.get(key)!r} on rank "
                        f"{rank}"
                    )
        raise ValueError(
            f"the {self.size} processes disagree on the {what}: "
            + "; ".join(differ[:5])
            + ("; ..." if len(differ) > 5 else "")
            + "; start every process with the same "
            "options and data"
        )

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self._mpi is not None and self.size > 1:
            self._mpi.Barrier()

    # What xpnet.fit and xpnet.evaluate call on the communicator they are handed (their
    # DataParallel protocol): the training loop never imports this package.

    def shard(self, loader: Any) -> Any:
        """This process's share of every batch of ``loader`` (a :class:`ShardedLoader`)."""
        from ._shard import ShardedLoader

        return loader if isinstance(loader, ShardedLoader) else ShardedLoader(loader, self)

    def train_step(
        self, model: Any, optimizer: Any, loss_fn: Any, grad_transform: Any = None
    ) -> Any:
        """A :class:`DistributedStep`: one allreduce of gradients, loss and counts a step,
        then ``grad_transform`` on the averaged gradients."""
        from ._step import DistributedStep

        return DistributedStep(model, optimizer, loss_fn, self, grad_transform)

    def broadcast_parameters(self, model: Any) -> None:
        """Give every process rank 0's parameters and buffers."""
        from ._sync import broadcast_parameters

        broadcast_parameters(model, self)


def init() -> Communicator:
    """Join the job this process was started in.

    Under ``mpiexec`` (or any MPI launcher) this returns the world communicator; started
    alone, a communicator of one process, so the same script runs either way.

    Returns
    -------
    Communicator

    Raises
    ------
    ImportError
        Naming the packages to install, when this process was started by an MPI launcher
        but mpi4py is missing.
    """
    try:
        from mpi4py import MPI
    except ImportError:
        if _launched_by_mpi():
            raise ImportError(
                f"xpnet.distributed: started by an MPI launcher but mpi4py is missing; {_INSTALL}"
            ) from None
        return Communicator(rank=0, size=1, local_rank=0)
    world = MPI.COMM_WORLD
    local = world.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        local_rank = local.Get_rank()
    finally:
        local.Free()
    return Communicator(
        rank=world.Get_rank(), size=world.Get_size(), local_rank=local_rank, _mpi=world
    )


def pick_device(backend: str, requested: Any, local_rank: int, gpu_count: int) -> Any:
    """The device a process of a data-parallel job uses: one GPU per process on a machine.

    An explicit device (``"cuda:1"``, or any library device object) is kept. Otherwise, on
    a backend with GPUs (``cupy``; ``torch`` asked for ``"cuda"`` without an index), the
    process takes GPU ``local_rank`` modulo ``gpu_count``. Everything else stays as asked
    (``None``: the backend's default).

    Parameters
    ----------
    backend : str
        The backend's registry name.
    requested : str, int, library device or None
        What the user asked for (``--device``).
    local_rank, gpu_count : int
        This process among those on its machine, and the GPUs the machine has.

    Returns
    -------
    str, int, library device or None
    """
    if gpu_count < 1:
        return requested
    chosen = f"cuda:{local_rank % gpu_count}"
    unindexed = requested is None or (isinstance(requested, str) and requested in ("cuda", "gpu"))
    if backend == "cupy" and unindexed:
        return chosen
    if backend == "torch" and isinstance(requested, str) and requested == "cuda":
        return chosen
    return requested


def _gpu_count(backend: str) -> int:
    try:
        if backend == "cupy":
            import cupy

            return int(cupy.cuda.runtime.getDeviceCount())
        if backend == "torch":
            import torch

            return int(torch.cuda.device_count())
    except Exception:  # no library, no driver: no GPU to share out
        return 0
    return 0


def _launched_by_mpi() -> bool:
    markers = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_LOCALRANKID")
    return any(name in os.environ for name in markers)
