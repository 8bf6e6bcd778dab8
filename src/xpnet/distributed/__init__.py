"""Data-parallel training over MPI: SPMD processes started by ``mpiexec``, one allreduce of a
flat gradient buffer per step (as ChainerMN and Horovod do).

Every process builds the same model and data loader; :func:`init` says which process this
is; :func:`broadcast_parameters` makes the replicas equal; :class:`ShardedLoader` gives each
process its share of every global batch; :func:`allreduce_mean` averages the gradients,
weighted by each share's size, so the result equals one process training on the whole
batch, up to round-off (:class:`DistributedOptimizer` does this inside its ``step``).
:func:`xpnet.fit` does all of this when given ``comm=``::

    mpiexec -n 2 python -m mpi4py -m xpnet train --distributed --save run.safetensors

or, from Python, ``fit(model, optimizer, loader, epochs, comm=xpnet.distributed.init())``.
Checkpoints and logs come from rank 0; evaluation sums its counts over all processes.
BatchNorm keeps per-process statistics (each sees its own share), and dropout masks differ
per process (each draws from its own seed, ``seed + rank``).
"""

from __future__ import annotations

from ._comm import Communicator, init
from ._dask import predict
from ._optimizer import DistributedOptimizer
from ._shard import ShardedLoader
from ._step import DistributedStep
from ._sync import allreduce_mean, broadcast_parameters

__all__ = [
    "Communicator",
    "DistributedOptimizer",
    "DistributedStep",
    "ShardedLoader",
    "allreduce_mean",
    "broadcast_parameters",
    "init",
    "predict",
]
