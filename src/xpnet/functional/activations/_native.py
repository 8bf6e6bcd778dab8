"""Activation pullbacks by a backend's own fused kernels (see :mod:`xpnet.config`'s
``native_kernels``); the standard pullbacks in :mod:`._rectifiers` are the definition, the
path on every other namespace, and the oracle of the tests."""

from __future__ import annotations

import importlib
from typing import Any

import array_api_compat

from ...config import get_native_kernels

__all__ = ["native_relu_pullback"]


def native_relu_pullback(xp: Any, y: Any, dy: Any) -> Any:
    """relu's input gradient ``where(y <= 0, 0, dy)`` by ``aten.threshold_backward`` on the
    torch backend (torch's own relu pullback: one pass, where ``torch.where`` and the
    comparison before it take two and a boolean temporary), else ``None``. A NaN output
    passes ``dy`` in both."""
    if not get_native_kernels() or not array_api_compat.is_torch_namespace(xp):
        return None
    torch = importlib.import_module("torch")
    return torch.ops.aten.threshold_backward(dy, y, 0.0)
