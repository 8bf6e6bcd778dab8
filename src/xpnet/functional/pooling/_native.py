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


def _max_pool_torch(plan: PoolPlan) -> Any:
    """torch, where its max pooling applies to this plan; else ``None``. With dilation a
    window can lie wholly in the padding, where torch's backward writes through an index
    past the input (it crashed the process here): the standard path takes those."""
    return None if plan.dilation != (1, 1) else _torch(plan)


def _max_pool_options(plan: PoolPlan) -> tuple[list[int], ...]:
    """aten's kernel_size, stride, padding and dilation."""
    return (list(plan.kernel), list(plan.stride), list(plan.padding), list(plan.dilation))


def native_max_pool2d(
    plan: PoolPlan, input: Any, ceil_mode: bool, return_indices: bool
) -> tuple[Any, Pullback] | None:
    """``(output, pullback)`` of max pooling by ``aten.max_pool2d_with_indices`` and its
    backward, or ``None`` where the native kernels do not apply."""
    torch = _max_pool_torch(plan)
    if torch is None:
        return None
    options = _max_pool_options(plan)
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
    torch = _max_pool_torch(plan)
    if torch is None:
        return None
    return torch.ops.aten.max_pool2d(input, *_max_pool_options(plan), bool(ceil_mode))


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
