"""2-D pooling by PyTorch's own kernels on the torch backend (see :mod:`xpnet.config`'s
``native_kernels``); the standard passes in :mod:`._max` and :mod:`._average` are the
definition, the path on every other namespace, and the oracle of the tests.

torch's kernels follow torch exactly, which differs from the standard path in one place:
a window holding NaN reports (and sends its gradient to) its last NaN, where the standard
path takes the first.
"""

from __future__ import annotations

import importlib
from typing import Any

import array_api_compat

from ...config import get_native_kernels
from .._autodiff import Pullback
from ._plan import PoolPlan

__all__ = ["native_avg_pool2d", "native_max_pool2d", "native_max_pool2d_inference"]


def _torch(plan: PoolPlan) -> Any:
    """torch, where the native kernels apply to this plan's arrays; else ``None``."""
    if get_native_kernels() and array_api_compat.is_torch_namespace(plan.xp):
        return importlib.import_module("torch")
    return None


def native_max_pool2d(
    plan: PoolPlan, input: Any, ceil_mode: bool, return_indices: bool
) -> tuple[Any, Pullback] | None:
    """``(output, pullback)`` of max pooling by ``aten.max_pool2d_with_indices`` and its
    backward, or ``None`` where the native kernels do not apply."""
    torch = _torch(plan)
    if torch is None or plan.dilation != (1, 1):
        # With dilation a window can lie wholly in the padding, where torch's backward
        # writes through an index past the input (it crashed the process here).
        return None
    options = (list(plan.kernel), list(plan.stride), list(plan.padding), list(plan.dilation))
    y, indices = torch.ops.aten.max_pool2d_with_indices(input, *options, bool(ceil_mode))

    def pullback(dy: Any) -> tuple[Any]:
        return (
            torch.ops.aten.max_pool2d_with_indices_backward(
                dy, input, *options, bool(ceil_mode), indices
            ),
        )

    return ((y, indices) if return_indices else y), pullback


def native_max_pool2d_inference(plan: PoolPlan, input: Any, ceil_mode: bool) -> Any:
    """Max pooling's output alone by ``aten.max_pool2d``, which keeps no indices (torch's
    own inference path), or ``None`` where the native kernels do not apply."""
    torch = _torch(plan)
    if torch is None or plan.dilation != (1, 1):
        return None  # as native_max_pool2d: one rule for both
    options = (list(plan.kernel), list(plan.stride), list(plan.padding), list(plan.dilation))
    return torch.ops.aten.max_pool2d(input, *options, bool(ceil_mode))


def native_avg_pool2d(
    plan: PoolPlan,
    input: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> tuple[Any, Pullback] | None:
    """``(output, pullback)`` of average pooling by ``aten.avg_pool2d`` and its backward,
    or ``None`` where the native kernels do not apply."""
    torch = _torch(plan)
    if torch is None:
        return None
    options = (
        list(plan.kernel),
        list(plan.stride),
        list(plan.padding),
        bool(ceil_mode),
        bool(count_include_pad),
        divisor_override,
    )
    y = torch.ops.aten.avg_pool2d(input, *options)

    def pullback(dy: Any) -> tuple[Any]:
        return (torch.ops.aten.avg_pool2d_backward(dy, input, *options),)

    return y, pullback
