"""Summing a gradient buffer that lives on a GPU, without leaving it: NCCL through
``cupy.cuda.nccl``, for CuPy arrays and for torch CUDA tensors (seen by CuPy through DLPack,
so no copy is made either way)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import array_api_compat

__all__ = ["NcclAllreduce", "cuda_device_index", "import_nccl"]


def import_nccl() -> Any:
    """``cupy.cuda.nccl`` when CuPy and its NCCL library both load here, else None."""
    try:
        from cupy.cuda import nccl
    except Exception:  # no cupy, no CUDA driver, or cupy built without NCCL
        return None
    return nccl if getattr(nccl, "available", True) else None


def cuda_device_index(buffer: Any) -> int | None:
    """The CUDA device holding ``buffer`` (a CuPy array or torch tensor), else None."""
    if array_api_compat.is_cupy_array(buffer):
        return int(buffer.device.id)
    if array_api_compat.is_torch_array(buffer) and buffer.device.type == "cuda":
        import torch

        index = buffer.device.index
        return int(torch.cuda.current_device() if index is None else index)
    return None


@contextlib.contextmanager
def _on_device(index: int | None) -> Iterator[None]:
    if index is None:  # the caller's current device
        yield
        return
    import cupy

    with cupy.cuda.Device(index):
        yield


class NcclAllreduce:
    """An NCCL communicator over the same processes as an MPI communicator, on one GPU per
    process.

    Rank 0 draws NCCL's unique id and MPI broadcasts it; every process then joins with its
    rank. Creating one is collective: every process must do it at the same point.

    Parameters
    ----------
    mpi : mpi4py communicator
        Carries the unique id (its ``bcast``).
    rank, size : int
        This process and how many take part.
    device_index : int or None
        The GPU this process reduces on (None: the current device).
    nccl : module, optional
        ``cupy.cuda.nccl`` (the default), or anything with its interface.
    """

    def __init__(
        self, mpi: Any, rank: int, size: int, device_index: int | None, nccl: Any = None
    ) -> None:
        self.nccl = import_nccl() if nccl is None else nccl
        if self.nccl is None:
            raise RuntimeError(
                "NCCL is not available: install CuPy with NCCL (pip install cupy-cuda12x "
                "nvidia-nccl-cu12)"
            )
        self.device_index = device_index
        unique_id = self.nccl.get_unique_id() if rank == 0 else None
        unique_id = mpi.bcast(unique_id, root=0)
        with _on_device(device_index):
            self._comm = self.nccl.NcclCommunicator(size, unique_id, rank)

    def sum_pointer(self, pointer: int, count: int, stream: int) -> None:
        """Sum ``count`` float64 values at device address ``pointer`` over the processes,
        in place, queued on CUDA stream ``stream``."""
        with _on_device(self.device_index):
            self._comm.allReduce(
                pointer, pointer, count, self.nccl.NCCL_FLOAT64, self.nccl.NCCL_SUM, stream
            )

    def sum_(self, buffer: Any) -> None:
        """Sum a contiguous 1-d float64 CuPy array or torch CUDA tensor over the processes,
        in place.

        A torch tensor is reduced on torch's current stream, so torch's later work on it
        waits for the sum and nothing is synchronised with the host.
        """
        import cupy

        with _on_device(self.device_index):
            if array_api_compat.is_torch_array(buffer):
                import torch

                stream = _cupy_stream(torch.cuda.current_stream(buffer.device))
                with stream:  # DLPack orders torch's writes before this stream's reads
                    view = cupy.from_dlpack(buffer.detach())
            else:
                view, stream = buffer, cupy.cuda.get_current_stream()
            self.sum_pointer(int(view.data.ptr), int(view.size), int(stream.ptr))


def _cupy_stream(torch_stream: Any) -> Any:
    """CuPy's handle on a torch CUDA stream (the CUDA stream protocol where CuPy has it:
    ``ExternalStream`` is deprecated from CuPy 14)."""
    import cupy

    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None:
        return from_external(torch_stream)
    return cupy.cuda.ExternalStream(torch_stream.cuda_stream, torch_stream.device.index)
