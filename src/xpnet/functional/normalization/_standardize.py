"""Layer, group and instance normalisation: standardise over some axes, then a per-element
(layer) or per-channel (group, instance) affine map, with one hand-written pullback.

All three are the same computation on a view of the input: ``(x - mean) / sqrt(var + eps)``
over the normalised axes (biased variance), where layer norm normalises the trailing
``normalized_shape``, group norm each ``(sample, group)`` and instance norm each
``(sample, channel)``. The pullback of the standardisation is the classic
``inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from ..._numbers import integer, real
from .._autodiff import Pullback, defvjp, primitive
from .._validation import check_float, check_same_dtype, check_shape, namespace_of

__all__ = ["group_norm", "instance_norm", "layer_norm"]


def _check_eps(eps: Any) -> float:
    value = real(eps)
    if value is None or not 0 <= value < math.inf:
        raise ValueError(f"eps: expected a non-negative float, got {eps!r}")
    return value


def _standardize(xp: Any, x: Any, axes: tuple[int, ...], eps: float) -> tuple[Any, Any]:
    """``(xhat, 1 / std)`` over ``axes`` (two passes for the variance: accurate)."""
    mean = xp.mean(x, axis=axes, keepdims=True)
    centred = x - mean
    var = xp.mean(centred * centred, axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    return centred * inv_std, inv_std


def _standardize_pullback(
    xp: Any, dxhat: Any, xhat: Any, inv_std: Any, axes: tuple[int, ...]
) -> Any:
    """The adjoint of :func:`_standardize`: the mean and the scale depend on ``x`` too."""
    mean_dxhat = xp.mean(dxhat, axis=axes, keepdims=True)
    mean_dxhat_xhat = xp.mean(dxhat * xhat, axis=axes, keepdims=True)
    return inv_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


def _affine_checks(
    xp: Any, input: Any, weight: Any, bias: Any, shape: tuple[int, ...], why: str
) -> None:
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            check_same_dtype(name, value, "input", input)
            check_shape(name, value, shape, why)


# ------------------------------------------------------------------------- layer norm


def _layer_setup(
    input: Any, normalized_shape: Any, weight: Any, bias: Any, eps: Any
) -> tuple[Any, tuple[int, ...], tuple[int, ...], float]:
    xp = namespace_of(input=input, weight=weight, bias=bias)
    check_float(xp, "input", input)
    given = (normalized_shape,) if integer(normalized_shape) is not None else normalized_shape
    shape = tuple(integer(n) or 0 for n in given) if isinstance(given, tuple | list) else ()
    if not shape or min(shape) < 1:
        raise ValueError(
            "normalized_shape: expected a positive int or a tuple of them, got "
            f"{normalized_shape!r}"
        )
    if tuple(input.shape[input.ndim - len(shape) :]) != shape or input.ndim < len(shape):
        raise ValueError(
            f"input: its trailing axes must be normalized_shape {shape}, got shape "
            f"{tuple(input.shape)}"
        )
    _affine_checks(xp, input, weight, bias, shape, "normalized_shape")
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    return xp, shape, axes, _check_eps(eps)


@primitive
def layer_norm(
    input: Any,
    normalized_shape: int | Sequence[int],
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Any:
    """Layer normalisation over the trailing ``normalized_shape`` axes, as
    ``torch.nn.functional.layer_norm``.

    Parameters
    ----------
    input : array
        Floating point, ``(..., *normalized_shape)``.
    normalized_shape : int or tuple of int
        The trailing axes normalised together.
    weight, bias : array, optional
        ``normalized_shape``-shaped element-wise scale and shift.
    eps : float, default 1e-5
        Added to the (biased) variance.

    Returns
    -------
    array
        ``input``'s shape, dtype, namespace and device.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[1.0, 3.0], [2.0, 2.0]], dtype="float64")
    >>> xpnet.to_numpy(F.layer_norm(x[:1], 2, eps=0.0)).tolist()  # mean 0, variance 1
    [[-1.0, 1.0]]
    >>> xpnet.to_numpy(F.layer_norm(x, 2))[1].tolist()  # a constant row (eps keeps it finite)
    [0.0, 0.0]
    """
    xp, _, axes, eps = _layer_setup(input, normalized_shape, weight, bias, eps)
    y, _ = _standardize(xp, input, axes, eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


@defvjp(layer_norm, "input", "weight", "bias")
def _layer_norm_vjp(
    input: Any,
    normalized_shape: int | Sequence[int],
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> tuple[Any, Pullback]:
    xp, _, axes, eps = _layer_setup(input, normalized_shape, weight, bias, eps)
    xhat, inv_std = _standardize(xp, input, axes, eps)
    y = xhat if weight is None else xhat * weight
    if bias is not None:
        y = y + bias
    leading = tuple(range(input.ndim - len(axes)))

    def pullback(dy: Any) -> tuple[Any, Any, Any]:
        dweight = None if weight is None else xp.sum(dy * xhat, axis=leading)
        dbias = None if bias is None else xp.sum(dy, axis=leading)
        dxhat = dy if weight is None else dy * weight
        return _standardize_pullback(xp, dxhat, xhat, inv_std, axes), dweight, dbias

    return y, pullback


# ------------------------------------------------------------------------- group norm


def _per_channel(xp: Any, v: Any, ndim: int) -> Any:
    return xp.reshape(v, (1, int(v.shape[0])) + (1,) * (ndim - 2))


def _group_setup(
    input: Any, num_groups: Any, weight: Any, bias: Any, eps: Any
) -> tuple[Any, tuple[int, ...], float]:
    xp = namespace_of(input=input, weight=weight, bias=bias)
    check_float(xp, "input", input)
    if input.ndim < 2:
        raise ValueError(
            f"input: expected (N, C, ...) with channels on axis 1, got shape {tuple(input.shape)}"
        )
    channels = int(input.shape[1])
    if (integer(num_groups) or 0) < 1:
        raise ValueError(f"num_groups: expected a positive int, got {num_groups!r}")
    num_groups = operator.index(num_groups)
    if channels % num_groups:
        raise ValueError(
            f"num_groups: the {channels} channels must divide into {num_groups} groups"
        )
    _affine_checks(xp, input, weight, bias, (channels,), "one value per channel")
    grouped = (int(input.shape[0]), num_groups, -1)
    return xp, grouped, _check_eps(eps)


@primitive
def group_norm(
    input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Any:
    """Group normalisation (Wu & He 2018): the channels split into ``num_groups`` groups,
    each ``(sample, group)`` standardised over its channels and positions, then a
    per-channel scale and shift, as ``torch.nn.functional.group_norm``.

    Parameters
    ----------
    input : array
        ``(N, C, ...)``, floating point; ``C`` divisible by ``num_groups``.
    num_groups : int
    weight, bias : array, optional
        ``(C,)``.
    eps : float, default 1e-5

    Returns
    -------
    array
        ``input``'s shape, dtype, namespace and device.
    """
    xp, grouped, eps = _group_setup(input, num_groups, weight, bias, eps)
    xhat, _ = _standardize(xp, xp.reshape(input, grouped), (2,), eps)
    y = xp.reshape(xhat, tuple(input.shape))
    if weight is not None:
        y = y * _per_channel(xp, weight, input.ndim)
    return y if bias is None else y + _per_channel(xp, bias, input.ndim)


@defvjp(group_norm, "input", "weight", "bias")
def _group_norm_vjp(
    input: Any, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> tuple[Any, Pullback]:
    xp, grouped, eps = _group_setup(input, num_groups, weight, bias, eps)
    shape = tuple(input.shape)
    xhat_grouped, inv_std = _standardize(xp, xp.reshape(input, grouped), (2,), eps)
    xhat = xp.reshape(xhat_grouped, shape)
    y = xhat if weight is None else xhat * _per_channel(xp, weight, input.ndim)
    if bias is not None:
        y = y + _per_channel(xp, bias, input.ndim)
    others = (0, *range(2, input.ndim))

    def pullback(dy: Any) -> tuple[Any, Any, Any]:
        dweight = None if weight is None else xp.sum(dy * xhat, axis=others)
        dbias = None if bias is None else xp.sum(dy, axis=others)
        dxhat = dy if weight is None else dy * _per_channel(xp, weight, input.ndim)
        dx = _standardize_pullback(xp, xp.reshape(dxhat, grouped), xhat_grouped, inv_std, (2,))
        return xp.reshape(dx, shape), dweight, dbias

    return y, pullback


# ---------------------------------------------------------------------- instance norm


def _instance_setup(
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any,
    bias: Any,
    use_input_stats: Any,
    eps: Any,
) -> tuple[Any, tuple[int, ...], float]:
    xp = namespace_of(
        input=input, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias
    )
    check_float(xp, "input", input)
    if input.ndim < 3:
        raise ValueError(
            "input: expected (N, C, L), (N, C, H, W) or (N, C, D, H, W), got shape "
            f"{tuple(input.shape)}"
        )
    channels = int(input.shape[1])
    _affine_checks(xp, input, weight, bias, (channels,), "one value per channel")
    _affine_checks(xp, input, running_mean, running_var, (channels,), "one value per channel")
    if not isinstance(use_input_stats, bool):
        raise TypeError(f"use_input_stats: expected a bool, got {use_input_stats!r}")
    if not use_input_stats and (running_mean is None or running_var is None):
        raise ValueError(
            "running_mean, running_var: use_input_stats=False normalises with them, got None"
        )
    if use_input_stats and math.prod(int(n) for n in input.shape[2:]) == 1:
        raise ValueError(
            "input: expected more than 1 value per channel when using input statistics, got "
            f"input size {tuple(input.shape)}"
        )
    return xp, tuple(range(2, input.ndim)), _check_eps(eps)


@primitive
def instance_norm(
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Any:
    """Instance normalisation (Ulyanov et al. 2016): each ``(sample, channel)`` standardised
    over its positions, then a per-channel scale and shift, as
    ``torch.nn.functional.instance_norm``.

    Parameters
    ----------
    input : array
        ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``, floating point.
    running_mean, running_var : array, optional
        ``(C,)``; used instead of each instance's statistics when ``use_input_stats`` is
        False. Unlike torch, never updated here (arrays may be immutable):
        :class:`xpnet.nn.InstanceNorm2d` keeps them.
    weight, bias : array, optional
        ``(C,)``.
    use_input_stats : bool, default True
    momentum : float, default 0.1
        Accepted for torch's signature; the running statistics are the module's business.
    eps : float, default 1e-5

    Returns
    -------
    array
        ``input``'s shape, dtype, namespace and device.
    """
    xp, axes, eps = _instance_setup(
        input, running_mean, running_var, weight, bias, use_input_stats, eps
    )
    return _instance_forward(xp, input, running_mean, running_var, weight, bias,
                             use_input_stats, axes, eps)[0]  # fmt: skip


def _instance_forward(
    xp: Any,
    input: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any,
    bias: Any,
    use_input_stats: bool,
    axes: tuple[int, ...],
    eps: float,
) -> tuple[Any, Any, Any]:
    """``(output, xhat, 1 / std)``."""
    if use_input_stats:
        xhat, inv_std = _standardize(xp, input, axes, eps)
    else:
        inv_std = 1.0 / xp.sqrt(_per_channel(xp, running_var, input.ndim) + eps)
        xhat = (input - _per_channel(xp, running_mean, input.ndim)) * inv_std
    y = xhat if weight is None else xhat * _per_channel(xp, weight, input.ndim)
    if bias is not None:
        y = y + _per_channel(xp, bias, input.ndim)
    return y, xhat, inv_std


@defvjp(instance_norm, "input", "weight", "bias")
def _instance_norm_vjp(
    input: Any,
    running_mean: Any = None,
    running_var: Any = None,
    weight: Any = None,
    bias: Any = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Any, Pullback]:
    xp, axes, eps = _instance_setup(
        input, running_mean, running_var, weight, bias, use_input_stats, eps
    )
    y, xhat, inv_std = _instance_forward(xp, input, running_mean, running_var, weight, bias,
                                         use_input_stats, axes, eps)  # fmt: skip
    others = (0, *axes)

    def pullback(dy: Any) -> tuple[Any, Any, Any]:
        dweight = None if weight is None else xp.sum(dy * xhat, axis=others)
        dbias = None if bias is None else xp.sum(dy, axis=others)
        dxhat = dy if weight is None else dy * _per_channel(xp, weight, input.ndim)
        if use_input_stats:
            dx = _standardize_pullback(xp, dxhat, xhat, inv_std, axes)
        else:  # an affine map of x with fixed statistics
            dx = dxhat * inv_std
        return dx, dweight, dbias

    return y, pullback
