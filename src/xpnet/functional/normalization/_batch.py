"""Batch normalisation, functional: the running statistics are returned, never mutated."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import array_api_compat

from ..._numbers import real
from ...backends import device_profile
from .. import _numba
from .._autodiff import Pullback, defvjp, primitive
from .._inplace import add_into, mul_into, sub_into
from .._validation import check_float, check_same_dtype, check_shape, namespace_of

__all__ = ["batch_norm"]


@dataclass(frozen=True)
class _NormPlan:
    xp: Any
    channels: int
    count: int  # values per channel: N * d1 * d2 ...
    axes: tuple[int, ...]  # every axis but the channel axis
    param_shape: tuple[int, ...]  # (1, C, 1, ...): a per-channel vector, broadcastable
    launch_bound: bool = False  # a GPU: fewest kernels over fewest temporaries

    def per_channel(self, v: Any) -> Any:
        return self.xp.reshape(v, self.param_shape)

    def channel_sum(self, v: Any) -> Any:
        return self.xp.sum(v, axis=self.axes)

    def channel_dot(self, a: Any, b: Any) -> Any:
        """``channel_sum(a * b)`` without the product's temporary: one ``vecdot`` over each
        sample's positions, then a sum over the batch."""
        xp = self.xp
        if a.ndim == 2:
            return xp.sum(a * b, axis=0)
        shape = (int(a.shape[0]), self.channels, math.prod(int(n) for n in a.shape[2:]))
        return xp.sum(xp.vecdot(xp.reshape(a, shape), xp.reshape(b, shape), axis=-1), axis=0)


def _plan(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any,
    bias: Any,
    training: Any,
    momentum: Any,
    eps: Any,
) -> _NormPlan:
    xp = namespace_of(
        input=input, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias
    )
    if input.ndim < 2:
        raise ValueError(
            "input: expected an array (N, C), (N, C, L), (N, C, H, W) or (N, C, D, H, W) "
            f"with channels on axis 1, got shape {tuple(input.shape)}"
        )
    check_float(xp, "input", input)
    channels = int(input.shape[1])
    for name, value in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if value is not None:
            check_same_dtype(name, value, "input", input)
            check_shape(name, value, (channels,), "one value per channel")
    if not isinstance(training, bool):
        raise TypeError(f"training: expected a bool, got {training!r}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(
            "running_mean, running_var: expected both or neither, got only "
            + ("running_var" if running_mean is None else "running_mean")
        )
    if running_mean is None and not training:
        raise ValueError(
            "running_mean, running_var: evaluation mode (training=False) normalises with the "
            "running statistics, got None; pass them or use training=True"
        )
    if momentum is None:
        raise ValueError(
            "momentum: expected a float, got None. torch's momentum=None (a cumulative "
            "average) needs the module's num_batches_tracked; pass "
            "momentum=1 / num_batches_tracked instead"
        )
    if real(momentum) is None:
        raise TypeError(f"momentum: expected a float, got {momentum!r}")
    eps_value = real(eps)
    if eps_value is None or not 0 <= eps_value < math.inf:
        raise ValueError(f"eps: expected a non-negative float, got {eps!r}")
    count = math.prod(int(n) for n in input.shape) // max(channels, 1)
    if training and count == 1:  # an empty batch is fine (an empty result, as in torch)
        raise ValueError(
            "input: expected more than 1 value per channel when training, got input size "
            f"{tuple(input.shape)}"
        )
    axes = (0, *range(2, input.ndim))
    param_shape = (1, channels) + (1,) * (input.ndim - 2)
    return _NormPlan(
        xp=xp,
        channels=channels,
        count=count,
        axes=axes,
        param_shape=param_shape,
        launch_bound=device_profile(input).launch_bound,
    )


def _statistics(
    plan: _NormPlan, x: Any, running_mean: Any, running_var: Any, training: bool
) -> Any:
    """The mean and the (biased) variance the output is normalised with, ``(1, C, 1...)``."""
    xp = plan.xp
    if training:
        mean = xp.mean(x, axis=plan.axes, keepdims=True)
        centred = x - mean
        # Two passes (mean, then the centred squares): accurate where E[x^2] - E[x]^2 is not.
        # On a GPU a mean of the squares is one kernel fewer; on the CPU vecdot spares the
        # squares' temporary.
        if plan.launch_bound:
            var = xp.mean(centred * centred, axis=plan.axes, keepdims=True)
        else:
            var = plan.per_channel(plan.channel_dot(centred, centred) / plan.count)
        return mean, var, centred
    return plan.per_channel(running_mean), plan.per_channel(running_var), None


def _forward(
    plan: _NormPlan,
    x: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any,
    bias: Any,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[tuple[Any, Any, Any], Any, Any, Any]:
    """``((output, new_running_mean, new_running_var), centred input, 1 / std, scale)``,
    ``scale`` being ``weight / std``."""
    xp = plan.xp
    if training and plan.count == 0:
        # No values: an empty output, and the running statistics left as they were (torch).
        ones = xp.ones(
            (1, plan.channels) + (1,) * (x.ndim - 2),
            dtype=x.dtype,
            device=array_api_compat.device(x),
        )
        return (x * ones, running_mean, running_var), x, ones, ones
    mean, var, centred = _statistics(plan, x, running_mean, running_var, training)
    inv_std = (var + eps) ** -0.5
    if centred is None:
        centred = x - mean
    # The per-channel factors first: two passes over the activations, not four.
    scale = inv_std if weight is None else inv_std * plan.per_channel(weight)
    y = centred * scale
    if bias is not None:
        y = add_into(y, plan.per_channel(bias))
    new_mean, new_var = running_mean, running_var
    if training and running_mean is not None:
        per_channel = (xp.reshape(mean, (plan.channels,)), xp.reshape(var, (plan.channels,)))
        new_mean, new_var = _running_update(plan, running_mean, running_var, *per_channel, momentum)
    return (y, new_mean, new_var), centred, inv_std, scale


def _running_update(
    plan: _NormPlan, running_mean: Any, running_var: Any, mean: Any, var: Any, momentum: float
) -> tuple[Any, Any]:
    """The running statistics after a batch of ``(C,)`` ``mean`` and biased ``var``."""
    # torch updates running_var with the unbiased variance: count / (count - 1) goes into
    # the momentum, a Python number.
    unbiased_momentum = momentum * plan.count / (plan.count - 1)
    new_mean = (1.0 - momentum) * running_mean + momentum * mean
    return new_mean, (1.0 - momentum) * running_var + unbiased_momentum * var


_KERNELS = f"{__package__}._compiled_kernels"


def _takes_compiled(plan: _NormPlan, training: bool, *arrays: Any) -> bool:
    """Training on NumPy with Numba (see :mod:`xpnet.functional._numba`): the compiled
    passes, three over the activations forward and two backward, against the standard
    path's seven and four."""
    present = [a for a in arrays if a is not None]
    return training and plan.count > 0 and _numba.applies(plan.xp, *present, kernels=_KERNELS)


def _compiled_forward(
    plan: _NormPlan,
    x: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any,
    bias: Any,
    momentum: float,
    eps: float,
) -> tuple[tuple[Any, Any, Any], tuple[Any, Any]]:
    """The training forward by the compiled kernel: the outputs, and what its pullback
    needs (the input as ``(N, C, S)`` and the per-channel statistics, float64)."""
    xp = plan.xp
    flat = _numba.contiguous(xp, x, (int(x.shape[0]), plan.channels, -1))
    y = xp.empty_like(flat)
    stats = xp.empty((3, plan.channels), dtype=xp.float64)  # mean, variance, 1 / std
    args = (
        flat,
        _numba.vector_or_empty(xp, weight, flat.dtype),
        _numba.vector_or_empty(xp, bias, flat.dtype),
        float(eps),
        y,
        stats,
    )
    kernel = _numba.load(_KERNELS).forward
    _numba.run_shared(kernel, args, _numba.shares(plan.channels, int(flat.size)))
    new_mean, new_var = running_mean, running_var
    if running_mean is not None:
        mean, var = (xp.asarray(stats[k], dtype=x.dtype) for k in (0, 1))
        new_mean, new_var = _running_update(plan, running_mean, running_var, mean, var, momentum)
    return (xp.reshape(y, tuple(x.shape)), new_mean, new_var), (flat, stats)


def _compiled_pullback(
    plan: _NormPlan, saved: tuple[Any, Any], dy: Any, weight: Any, bias: Any
) -> tuple[Any, Any, Any, Any, Any]:
    """The training pullback by the compiled kernel."""
    xp = plan.xp
    flat, stats = saved
    grad = _numba.contiguous(xp, xp.astype(dy, flat.dtype, copy=False), tuple(flat.shape))
    dx = xp.empty_like(flat)
    sums = xp.empty((2, plan.channels), dtype=xp.float64)  # sum(dy), sum(dy * xhat)
    weights = _numba.vector_or_empty(xp, weight, flat.dtype)
    args = (flat, grad, stats, weights, dx, sums)
    kernel = _numba.load(_KERNELS).backward
    _numba.run_shared(kernel, args, _numba.shares(plan.channels, int(flat.size)))
    dweight = None if weight is None else xp.asarray(sums[1], dtype=flat.dtype)
    dbias = None if bias is None else xp.asarray(sums[0], dtype=flat.dtype)
    return xp.reshape(dx, tuple(dy.shape)), None, None, dweight, dbias


@primitive
def batch_norm(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Any, Any, Any]:
    """Batch normalisation over every axis but the channel axis (axis 1).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, per channel. In training mode
    ``mean`` and ``var`` are the batch's (biased variance); in evaluation mode they are
    the running statistics.

    Unlike ``torch.nn.functional.batch_norm``, which updates ``running_mean`` and
    ``running_var`` in place, this returns the updated statistics (arrays may be
    immutable, e.g. JAX's); the output itself is torch's.

    Parameters
    ----------
    input : array
        ``(N, C)``, ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``; floating point.
    running_mean, running_var : array or None
        ``(C,)``, same dtype as ``input``. May be None only when ``training`` is True
        (then the returned statistics are None too).
    weight, bias : array, optional
        ``(C,)`` affine scale and shift.
    training : bool, default False
        Normalise with the batch statistics and update the running ones.
    momentum : float, default 0.1
        ``new = (1 - momentum) * running + momentum * batch_statistic``, with the batch's
        *unbiased* variance for ``running_var``, as torch does. torch's ``momentum=None``
        (a cumulative average) needs the module's batch counter, which a function does
        not have: it raises ``ValueError``; pass ``1 / num_batches_tracked`` instead.
    eps : float, default 1e-5
        Added to the variance before the square root; non-negative.

    Returns
    -------
    output : array
        ``input``'s shape, dtype and device.
    new_running_mean, new_running_var : array or None
        The updated statistics in training mode; ``running_mean`` and ``running_var``
        unchanged in evaluation mode.

    Raises
    ------
    ValueError
        Training with one value per channel, missing running statistics in evaluation
        mode, ``momentum=None``, or shapes that do not match the channel count.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[1.0], [3.0]], dtype="float64")
    >>> mean, var = xpnet.asarray([0.0], dtype="float64"), xpnet.asarray([1.0], dtype="float64")
    >>> y, new_mean, new_var = F.batch_norm(x, mean, var, training=True, eps=0.0)
    >>> xpnet.to_numpy(y).ravel().tolist(), float(new_mean[0]), float(new_var[0])
    ([-1.0, 1.0], 0.2, 1.1)
    """
    plan = _plan(input, running_mean, running_var, weight, bias, training, momentum, eps)
    if _takes_compiled(plan, training, input, running_mean, running_var, weight, bias):
        args = (plan, input, running_mean, running_var, weight, bias, momentum, eps)
        return _compiled_forward(*args)[0]
    return _forward(plan, input, running_mean, running_var, weight, bias, training, momentum, eps)[
        0
    ]


@defvjp(batch_norm, "input", "running_mean", "running_var", "weight", "bias")
def _batch_norm_vjp(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Any, Pullback]:
    plan = _plan(input, running_mean, running_var, weight, bias, training, momentum, eps)
    if _takes_compiled(plan, training, input, running_mean, running_var, weight, bias):
        args = (plan, input, running_mean, running_var, weight, bias, momentum, eps)
        compiled_outputs, saved = _compiled_forward(*args)

        def compiled_pullback(dy: Any) -> tuple[Any, Any, Any, Any, Any]:
            return _compiled_pullback(plan, saved, dy, weight, bias)

        return compiled_outputs, compiled_pullback
    outputs, centred, inv_std, scale = _forward(
        plan, input, running_mean, running_var, weight, bias, training, momentum, eps
    )
    xp = plan.xp

    def pullback(dy: Any) -> tuple[Any, Any, Any, Any, Any]:
        if training and plan.count == 0:  # empty
            dxhat = dy if weight is None else dy * plan.per_channel(weight)
            dweight = None if weight is None else plan.channel_sum(dy * centred)
            return dxhat, None, None, dweight, None if bias is None else plan.channel_sum(dy)
        # Per channel: sum(dy) and sum(dy * xhat) = inv_std * sum(dy * centred).
        sum_dy = plan.channel_sum(dy)
        sum_dy_xhat = plan.channel_dot(dy, centred) * xp.reshape(inv_std, (plan.channels,))
        dweight = None if weight is None else sum_dy_xhat
        dbias = None if bias is None else sum_dy
        if training:
            # The batch statistics depend on x: project out the mean and the xhat direction,
            # dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat)), as per-channel factors
            # of dy and of the centred input (three passes over the activations).
            mean_dy = plan.per_channel(sum_dy) / plan.count
            centred_factor = plan.per_channel(sum_dy_xhat) * (scale * (inv_std / plan.count))
            dx = mul_into(dy - mean_dy, scale)
            return sub_into(dx, centred * centred_factor), None, None, dweight, dbias
        # Evaluation: an affine map of x whose shift and scale come from the running stats.
        dxhat = dy if weight is None else dy * plan.per_channel(weight)
        dx = dy * scale
        drunning_mean = -plan.channel_sum(dx)
        drunning_var = plan.channel_sum(dxhat * centred) * xp.reshape(
            -0.5 * inv_std**3, (plan.channels,)
        )
        return dx, drunning_mean, drunning_var, dweight, dbias

    return outputs, pullback
