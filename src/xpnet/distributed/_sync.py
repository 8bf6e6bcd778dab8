"""Keeping replicas equal: the parameters broadcast once, the gradients averaged every step
in one flat buffer that also carries the loss and the number of examples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import backends
from ..nn import Module
from ..optim.optimizer import _on_host_then_like
from ._comm import Communicator

__all__ = ["allreduce_mean", "broadcast_parameters"]


def broadcast_parameters(model: Module, comm: Communicator, root: int = 0) -> None:
    """Give every process ``root``'s parameters and buffers (one broadcast each), so that
    all replicas start equal whatever their initialisation."""
    state = model.state_dict()
    model.load_state_dict(
        {key: comm.broadcast(np.asarray(backends.to_numpy(v)), root) for key, v in state.items()}
    )


def allreduce_mean(
    grads: Mapping[str, Any],
    comm: Communicator,
    *,
    count: int,
    loss: Any = None,
    correct: Any = None,
) -> tuple[dict[str, Any], float, int, int]:
    """Average gradients over the processes, weighted by how many examples each saw.

    Each process passes the mean gradient of its own examples; the result is the mean over
    all of them (``sum(count_r * grad_r) / sum(count_r)``), so uneven shards (a last batch
    that does not split evenly) give exactly the one-process gradient of the whole batch,
    up to round-off. One allreduce of one float64 buffer carries the gradients, the loss
    and the counts.

    Parameters
    ----------
    grads : mapping
        Name to gradient array (any backend), e.g. what :func:`xpnet.nn.value_and_grad`
        returns.
    comm : Communicator
    count : int
        Examples behind this process's gradients (0 is allowed: it contributes nothing).
    loss, correct : 0-d arrays or numbers, optional
        This process's mean loss and number of correct predictions, summed alongside.

    Returns
    -------
    (dict, float, int, int)
        The averaged gradients (new arrays on each gradient's backend, device and dtype,
        never views of the communication buffer), the mean loss over all examples, the
        correct predictions and the examples over all processes.
    """
    names = list(grads)
    hosts = [np.asarray(backends.to_numpy(grads[name]), dtype=np.float64) for name in names]
    sizes = [host.size for host in hosts]
    local_loss = float(backends.to_numpy(loss)) if loss is not None else 0.0
    local_correct = float(backends.to_numpy(correct)) if correct is not None else 0.0
    buffer = np.concatenate(
        [*(host.ravel() * count for host in hosts), [local_loss * count, local_correct, count]]
    )
    total = comm.allreduce_sum(buffer)
    examples = round(float(total[-1]))
    if examples == 0:
        raise ValueError("allreduce_mean: no process saw any example (every count was 0)")
    averaged: dict[str, Any] = {}
    offset = 0
    for name, host, size in zip(names, hosts, sizes, strict=True):
        part = (total[offset : offset + size] / examples).reshape(host.shape)
        averaged[name] = _on_host_then_like(part, grads[name])
        offset += size
    return averaged, float(total[-3] / examples), round(float(total[-2])), examples
