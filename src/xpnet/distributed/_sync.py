"""Keeping replicas equal: the parameters broadcast once, the gradients averaged every step
in one flat buffer that also carries the loss and the number of examples."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import array_api_compat
import numpy as np

from .. import backends
from ..nn import Module
from ..optim._groups import on_host_then_like
from ._comm import THROUGH_HOST, Communicator

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
    and the counts. NumPy, torch and CuPy gradients are packed on their own device and
    summed there (in place over MPI on the host, over NCCL on a GPU); other backends' go
    through host memory. Either way the host reads back three numbers per call.

    Parameters
    ----------
    grads : mapping
        Name to gradient array (any backend), e.g. what :func:`xpnet.nn.value_and_grad`
        returns.
    comm : Communicator
    count : int
        Examples behind this process's gradients (0 is allowed: it contributes nothing,
        whatever ``grads`` and ``loss`` hold, so their shapes are all that matters).
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
    if not names:
        raise ValueError("allreduce_mean: grads is empty; expected at least one gradient")
    xp = array_api_compat.array_namespace(*grads.values())
    where_they_live = _packs_where_it_lives(xp)
    if where_they_live:
        parts, pack_xp = [grads[name] for name in names], xp
    else:  # copied to the host first, then NumPy all the way
        parts, pack_xp = [backends.to_numpy(grads[name]) for name in names], array_api_compat.numpy
    total = _pack(pack_xp, parts, count, loss, correct)
    comm.allreduce_sum_(total)
    if not where_they_live and comm.size > 1:
        comm.last_path = THROUGH_HOST
    tail = backends.to_numpy(total[-3:])  # one read: the division needs the count
    examples = round(float(tail[2]))
    if examples == 0:
        raise ValueError("allreduce_mean: no process saw any example (every count was 0)")
    averaged: dict[str, Any] = {}
    offset = 0
    for name in names:
        grad = grads[name]
        size = math.prod(grad.shape)
        # The division makes a new array: nothing returned is a view of the buffer.
        part = total[offset : offset + size] / examples
        if where_they_live:
            averaged[name] = xp.astype(xp.reshape(part, grad.shape), grad.dtype)
        else:
            averaged[name] = on_host_then_like(np.reshape(part, grad.shape), grad)
        offset += size
    return averaged, float(tail[0] / examples), round(float(tail[1])), examples


def _packs_where_it_lives(xp: Any) -> bool:
    """Whether gradients of namespace ``xp`` are packed and summed on their own device:
    libraries whose arrays can be written in place and handed over without a copy. JAX's
    arrays are immutable, and other namespaces make no promise, so they go through the
    host."""
    return bool(
        array_api_compat.is_numpy_namespace(xp)
        or array_api_compat.is_torch_namespace(xp)
        or array_api_compat.is_cupy_namespace(xp)
    )


def _pack(xp: Any, grads: list[Any], count: int, loss: Any, correct: Any) -> Any:
    """One new float64 buffer on the gradients' device: each gradient times ``count``, then
    the loss times ``count``, the correct predictions and ``count``. With no examples,
    zeros: an empty share's gradients and loss may be NaN (a mean over nothing)."""
    device = array_api_compat.device(grads[0])
    if count == 0:
        size = sum(math.prod(g.shape) for g in grads) + 3
        return xp.zeros((size,), dtype=xp.float64, device=device)

    def one(value: Any) -> Any:
        if value is None:
            return xp.zeros((1,), dtype=xp.float64, device=device)
        same_library = (
            array_api_compat.is_array_api_obj(value)
            and not isinstance(value, np.generic)
            and array_api_compat.array_namespace(value) is xp
        )
        if same_library:  # stays on the device: no read back to the host
            return xp.reshape(xp.astype(value, xp.float64), (1,))
        return xp.asarray([float(backends.to_numpy(value))], dtype=xp.float64, device=device)

    flat = [xp.reshape(xp.astype(g, xp.float64), (-1,)) * count for g in grads]
    counted = xp.asarray([float(count)], dtype=xp.float64, device=device)
    return xp.concat([*flat, one(loss) * count, one(correct), counted])
