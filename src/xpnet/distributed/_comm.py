"""The communicator: which process this is, how many there are, and the two collectives
data-parallel training needs (a sum over all processes, and a broadcast from one)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Communicator", "init"]

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

    def broadcast(self, values: np.ndarray, root: int = 0) -> np.ndarray:
        """``values`` as process ``root`` holds them, on every process (a new array)."""
        buffer = np.array(values, order="C", copy=True)
        if self._mpi is not None and self.size > 1:
            self._mpi.Bcast(buffer, root=root)
        return buffer

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self._mpi is not None and self.size > 1:
            self._mpi.Barrier()


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


def _launched_by_mpi() -> bool:
    markers = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_LOCALRANKID")
    return any(name in os.environ for name in markers)
