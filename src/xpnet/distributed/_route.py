"""How a job sums its gradient buffers, decided once by all its processes together: each
must enter the same collective (MPI or NCCL), or the job hangs."""

from __future__ import annotations

import socket
import warnings
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from ._nccl import NcclAllreduce, cuda_device_index, import_nccl

__all__ = ["Route", "agree_route", "check_flat_float64", "host_view", "nccl_verdict"]


def check_flat_float64(buffer: Any) -> None:
    """Refuse anything but a contiguous 1-d float64 array: the sums read it as such."""
    xp = array_api_compat.array_namespace(buffer)
    contiguous = True
    if isinstance(buffer, np.ndarray) or array_api_compat.is_cupy_array(buffer):
        contiguous = bool(buffer.flags.c_contiguous)
    elif array_api_compat.is_torch_array(buffer):
        contiguous = bool(buffer.is_contiguous())
    if buffer.ndim != 1 or buffer.dtype != xp.float64 or not contiguous:
        raise TypeError(
            "buffer: expected a contiguous 1-d float64 array, got a "
            f"{'' if contiguous else 'non-contiguous '}{buffer.ndim}-d {buffer.dtype} array"
        )


def host_view(buffer: Any) -> np.ndarray | None:
    """A writable NumPy array on ``buffer``'s own memory (no copy), or None when it is not
    in host memory or cannot be written in place."""
    if isinstance(buffer, np.ndarray):
        return buffer if buffer.flags.writeable and buffer.flags.c_contiguous else None
    if array_api_compat.is_torch_array(buffer) and buffer.device.type == "cpu":
        # torch's own view shares the memory and is writable (NumPy 1.x marks DLPack
        # imports read-only).
        view = buffer.detach().numpy()
        return view if view.flags.writeable and view.flags.c_contiguous else None
    return None


@dataclass(frozen=True)
class Route:
    """NCCL on GPU ``device_index`` for every process, or (``nccl`` None) MPI for every
    process, each on its host memory or a host copy."""

    nccl: NcclAllreduce | None = None
    device_index: int | None = None


def agree_route(mpi: Any, rank: int, size: int, buffer: Any) -> Route:
    """Decide, with every process of the job (a collective), how buffers like ``buffer``
    are summed: over NCCL when every process's buffer is on a GPU of its own and every
    process has NCCL; else over MPI, copying GPU buffers through the host."""
    index = None if host_view(buffer) is not None else cuda_device_index(buffer)
    nccl_here = index is not None and import_nccl() is not None
    use_nccl, why_not = nccl_verdict(mpi.allgather((socket.gethostname(), index, nccl_here)))
    if why_not is not None and rank == 0:
        warnings.warn(
            f"xpnet.distributed: {why_not}; gradients are summed through host memory",
            RuntimeWarning,
            stacklevel=4,
        )
    if not use_nccl or index is None:
        return Route()
    return Route(NcclAllreduce(mpi, rank, size, index), index)


def nccl_verdict(everyone: list[tuple[str, int | None, bool]]) -> tuple[bool, str | None]:
    """Whether processes can sum over NCCL, from each one's (host name, GPU index or None,
    has NCCL), and, when they are all on GPUs but cannot, why (a warning to show)."""
    if any(gpu is None for _, gpu, _ in everyone):
        return False, None  # some process sums in host memory: all use MPI, as expected
    missing = [str(rank) for rank, (_, _, has_nccl) in enumerate(everyone) if not has_nccl]
    if missing:
        return False, (
            f"NCCL is missing on rank{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            "(install CuPy with NCCL: pip install cupy-cuda12x nvidia-nccl-cu12)"
        )
    places = [(host, gpu) for host, gpu, _ in everyone]
    crowded = sorted({place for place in places if places.count(place) > 1}, key=str)
    if crowded:
        shared = ", ".join(f"GPU {gpu} of {host}" for host, gpu in crowded)
        return False, (
            f"processes share {shared}, which NCCL refuses (give each process its own GPU: "
            "xpnet.set_backend(name, comm.device_for(name)))"
        )
    return True, None
