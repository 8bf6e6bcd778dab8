"""Cross-entropy by PyTorch's own kernels on the torch backend (see :mod:`xpnet.config`'s
``native_kernels``); the standard loss in :mod:`._classes` is the definition, the path on
every other namespace and for every other case, and the oracle of the tests."""

from __future__ import annotations

import importlib
from typing import Any

import array_api_compat

from ...config import get_native_kernels
from .._autodiff import Pullback
from .._validation import reads_values

__all__ = ["native_cross_entropy"]

_REDUCTION_CODES = {"none": 0, "mean": 1, "sum": 2}  # at::Reduction


def native_cross_entropy(
    xp: Any,
    input: Any,
    target: Any,
    weight: Any,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
) -> tuple[Any, Pullback] | None:
    """``(loss, pullback)`` by ``aten._log_softmax`` and ``aten.nll_loss_forward`` (and
    their backwards), for ``(N, C)`` scores without label smoothing whose targets were
    range-checked on the host; else ``None``.

    torch's kernels index with the targets, so an unchecked target outside ``[0, C)``
    would fail on the device (CUDA asserts) where the standard path gives a NaN loss.
    """
    if (
        not get_native_kernels()
        or not array_api_compat.is_torch_namespace(xp)
        or input.ndim != 2
        or label_smoothing != 0.0
        or not reads_values(target)
    ):
        return None
    torch: Any = importlib.import_module("torch")
    aten, code = torch.ops.aten, _REDUCTION_CODES[reduction]
    target = target.to(torch.int64)  # aten's indices are int64
    logp = aten._log_softmax(input, 1, False)
    loss, total_weight = aten.nll_loss_forward(logp, target, weight, code, ignore_index)

    def pullback(cotangent: Any) -> tuple[Any]:
        dlogp = aten.nll_loss_backward(
            cotangent, logp, target, weight, code, ignore_index, total_weight
        )
        return (aten._log_softmax_backward_data(dlogp, logp, 1, input.dtype),)

    return loss, pullback
