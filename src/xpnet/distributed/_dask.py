"""Batch inference on Dask: a model applied to every chunk of a dask array of images,
wherever the user's ``distributed.Client`` runs them.

Training does not fit Dask (its per-step scheduling costs more than the step; see
:mod:`xpnet.distributed` for MPI), but inference is embarrassingly parallel: each chunk of
images is an independent batch.
"""

from __future__ import annotations

import copy
import importlib
import threading
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from .. import backends
from ..nn import Module

__all__ = ["predict"]

_BACKEND_OF_CHUNK = {"numpy": "numpy", "cupy": "cupy"}


class _ChunkModel:
    """The model as sent to the workers: host weights and the architecture, placed on a
    chunk's backend the first time a worker sees one (once per worker and backend)."""

    def __init__(
        self,
        model: Module,
        mean: float | Sequence[float],
        std: float | Sequence[float],
        outputs: int = 0,
    ) -> None:
        self.model = copy.deepcopy(model).to("numpy")  # Module.to moves in place
        self.model.eval()
        self.mean, self.std, self.outputs = mean, std, outputs
        self._placed: dict[str, Module] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "mean": self.mean, "std": self.std, "outputs": self.outputs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def on(self, backend: str) -> Module:
        with self._lock:
            if backend not in self._placed:
                placed = copy.deepcopy(self.model).to(backend)
                placed.eval()
                self._placed[backend] = placed
            return self._placed[backend]

    def __call__(self, chunk: Any) -> Any:
        name = array_api_compat.array_namespace(chunk).__name__.split(".")[-1]
        backend = _BACKEND_OF_CHUNK.get(name, "numpy")
        if chunk.shape[0] == 0:
            xp = array_api_compat.array_namespace(chunk)
            return xp.zeros((0, self.outputs), dtype=xp.float32)
        with backends.use_backend(backend):
            xp = array_api_compat.array_namespace(chunk)
            x = xp.astype(chunk, xp.float32)
            if chunk.dtype == xp.uint8:
                x = x / 255.0
            # One value, or one per channel (CIFAR's), broadcast over (N, C, H, W).
            mean, std = (np.asarray(v, dtype=np.float32) for v in (self.mean, self.std))
            if mean.ndim:
                mean, std = mean.reshape(1, -1, 1, 1), std.reshape(1, -1, 1, 1)
            if np.any(mean != 0.0) or np.any(std != 1.0):
                x = (x - xp.asarray(mean)) / xp.asarray(std)
            out = self.on(backend)(backends.asarray(x))
            return xp.asarray(out) if backend == "cupy" else np.asarray(backends.to_numpy(out))


def predict(
    model: Module,
    images: Any,
    *,
    mean: float | Sequence[float] = 0.0,
    std: float | Sequence[float] = 1.0,
) -> Any:
    """The model's outputs (logits) for a dask array of images, computed chunk by chunk.

    Parameters
    ----------
    model : Module
        Any xpnet model; its weights travel to the workers with the task graph.
    images : dask.array.Array
        ``(N, C, H, W)``, chunked along the batch axis (other axes are joined into whole
        images); NumPy or CuPy chunks, uint8 (scaled to [0, 1]) or floating point.
    mean, std : float or sequence of float
        Normalisation applied to every chunk (one value, or one per channel), as
        :class:`~xpnet.data.DataLoader` does.

    Returns
    -------
    dask.array.Array
        ``(N, outputs)`` float32, lazily: ``.compute()`` runs it on whatever cluster the
        active ``distributed.Client`` points at (or Dask's local scheduler).

    Notes
    -----
    Dask's workers set ``MALLOC_TRIM_THRESHOLD_=65536``, which returns freed memory to the
    system at once; xpnet's large temporaries are then mapped afresh every time, which was
    measured to make a training step 1.55x slower. Inference chunks pay it too; to avoid
    it, give the workers a larger threshold (Dask's ``distributed.nanny.pre-spawn-environ``
    setting, ``MALLOC_TRIM_THRESHOLD_: 268435456``).
    """
    da: Any = importlib.import_module("dask.array")  # loosely typed, for strict mypy
    if not isinstance(images, da.Array):
        raise TypeError(
            f"images: expected a dask array chunked along the batch axis, got "
            f"{type(images).__name__} (for arrays in memory, call the model directly)"
        )
    if images.ndim != 4:
        raise ValueError(f"images: expected (N, C, H, W), got {images.ndim} dimensions")
    whole: Any = images
    whole = whole.rechunk({1: -1, 2: -1, 3: -1})  # whole images in every chunk
    mean = float(mean) if isinstance(mean, int | float) else [float(m) for m in mean]
    std = float(std) if isinstance(std, int | float) else [float(v) for v in std]
    apply = _ChunkModel(model, mean, std)
    probe = np.zeros((1, *(int(n) for n in whole.shape[1:])), np.float32)
    outputs = int(apply(probe).shape[1])
    apply.outputs = outputs
    return whole.map_blocks(
        apply,
        dtype=np.float32,
        chunks=(whole.chunks[0], (outputs,)),
        drop_axis=[2, 3],
        meta=np.empty((0, 0), np.float32),
    )
