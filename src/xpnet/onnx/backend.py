"""xpnet as an ONNX backend (``onnx.backend.base.Backend``), so that the ONNX project's own
backend tests, and any tool written against that interface, can run models on xpnet.

>>> import xpnet.onnx.backend as backend                        # doctest: +SKIP
>>> outputs = backend.run_model(model_proto, [images])          # doctest: +SKIP

Inputs and outputs are NumPy arrays, as the interface has them; the model runs on the
active xpnet backend (``device="CPU"``), or on a GPU backend with ``device="CUDA"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from .. import backends
from ._model import OnnxModel
from ._reader import read_model

__all__ = ["XpnetBackend", "XpnetRep", "prepare", "run_model", "supports_device"]


def _backend_for(device: str) -> str | None:
    """The xpnet backend a device string asks for: the active one for the CPU, a GPU
    backend (CuPy, else torch on CUDA) for CUDA, or ``None``."""
    kind = Device(device).type
    if kind == DeviceType.CPU:
        return backends.get_backend().name
    if kind != DeviceType.CUDA:
        return None
    for info in backends.list_backends():
        on_gpu = info.name == "cupy" or any("cuda" in str(d) for d in info.devices)
        if info.name in ("cupy", "torch") and info.available and on_gpu:
            return info.name
    return None


class XpnetRep(BackendRep):
    """A prepared model: :meth:`run` takes and returns NumPy arrays."""

    def __init__(self, model: OnnxModel, backend: str) -> None:
        self.model = model
        self.backend = backend

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        """Run on ``inputs`` (a sequence in the graph's input order, a dict by name, or one
        array); returns every output as a NumPy array."""
        if kwargs:
            raise TypeError(f"run: unexpected keyword arguments {sorted(kwargs)}")
        with backends.use_backend(self.backend):
            if isinstance(inputs, dict):
                result = self.model(**{k: backends.asarray(v) for k, v in inputs.items()})
            else:
                items = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
                result = self.model(*[backends.asarray(v) for v in items])
        outputs = result if isinstance(result, tuple) else (result,)
        return tuple(np.asarray(backends.to_numpy(out)) for out in outputs)


class XpnetBackend(Backend):
    """The ONNX backend interface over :func:`xpnet.onnx.load`."""

    @classmethod
    def is_compatible(cls, model: Any, device: str = "CPU", **kwargs: Any) -> bool:
        """Whether ``device`` is one xpnet runs on (the model itself is checked by
        :meth:`prepare`, whose errors name what it cannot run)."""
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> XpnetRep:
        """Import ``model`` (a path, bytes or ``ModelProto``) on the backend for
        ``device``."""
        backend = _backend_for(device)
        if backend is None:
            raise RuntimeError(f"device {device!r}: no xpnet backend here runs on it")
        with backends.use_backend(backend):
            return XpnetRep(OnnxModel(read_model(model)), backend)

    @classmethod
    def run_model(
        cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> tuple[np.ndarray, ...]:
        """Import ``model`` and run it once on ``inputs``."""
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: Any,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Sequence[tuple[Any, Any]] | None = None,
        **kwargs: Any,
    ) -> tuple[np.ndarray, ...]:
        """Not provided: xpnet imports whole models."""
        raise NotImplementedError("xpnet runs whole models: use prepare or run_model")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """Whether an xpnet backend here runs on ``device`` (``"CPU"``: always)."""
        return _backend_for(device) is not None


prepare = XpnetBackend.prepare
run_model = XpnetBackend.run_model
supports_device = XpnetBackend.supports_device
