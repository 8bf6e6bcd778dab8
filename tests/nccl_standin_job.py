"""NcclAllreduce's part of the NCCL protocol, checked over MPI on a machine without a GPU.

    mpiexec -n N python -m mpi4py tests/nccl_standin_job.py OUT_DIR

A stand-in for ``cupy.cuda.nccl`` implements the same calls on host memory with MPI, and
checks what real NCCL would need: only rank 0 draws the unique id, every rank joins with the
same id, its own rank and the right size, and a reduction names float64, sum and one buffer
for input and output. Each rank sums ``arange(10) * (rank + 1)`` and writes the result to
OUT_DIR/rank<R>.npy.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from xpnet.distributed._nccl import NcclAllreduce


class HostNccl:
    """What xpnet uses of ``cupy.cuda.nccl``, on host memory over MPI."""

    NCCL_FLOAT64 = 8  # NCCL's ncclFloat64 and ncclSum
    NCCL_SUM = 0

    def __init__(self, mpi: Any) -> None:
        self.mpi = mpi

    def get_unique_id(self) -> tuple[int, ...]:
        assert self.mpi.Get_rank() == 0, "only rank 0 draws the unique id"
        return tuple(os.urandom(128))

    def NcclCommunicator(self, ndev: int, unique_id: Any, rank: int) -> HostComm:
        return HostComm(self.mpi, ndev, unique_id, rank)


class HostComm:
    def __init__(self, mpi: Any, ndev: int, unique_id: Any, rank: int) -> None:
        assert isinstance(unique_id, tuple) and len(unique_id) == 128
        assert all(other == unique_id for other in mpi.allgather(unique_id)), "ids differ"
        assert (ndev, rank) == (mpi.Get_size(), mpi.Get_rank())
        self.mpi = mpi

    def allReduce(self, send: int, recv: int, count: int, dtype: int, op: int, stream: int) -> None:
        assert (dtype, op) == (HostNccl.NCCL_FLOAT64, HostNccl.NCCL_SUM)
        assert send == recv, "in place"
        assert isinstance(stream, int)
        values = np.ctypeslib.as_array((ctypes.c_double * count).from_address(recv))
        self.mpi.Allreduce(MPI.IN_PLACE, values)


def main() -> None:
    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    summer = NcclAllreduce(world, rank, world.Get_size(), None, nccl=HostNccl(world))
    buffer = np.arange(10.0) * (rank + 1)
    summer.sum_pointer(buffer.ctypes.data, buffer.size, 0)
    np.save(Path(sys.argv[1]) / f"rank{rank}.npy", buffer)


if __name__ == "__main__":
    main()
