"""The fully connected layer's op (``linear``), ``flatten`` and ``dropout``, with pullbacks."""

from __future__ import annotations

import math
import numbers
from typing import Any

import array_api_compat

from .._numbers import integer
from ..random import keep_mask
from ._autodiff import Pullback, defvjp, primitive
from ._validation import (
    check_float,
    check_ndim,
    check_same_dtype,
    check_shape,
    is_lazy,
    namespace_of,
)

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "flatten", "linear"]


# --------------------------------------------------------------------------- linear


def _linear_setup(input: Any, weight: Any, bias: Any) -> tuple[Any, int, int]:
    """Check the arguments; return ``(xp, rows, out_features)`` for the 2-D view."""
    xp = namespace_of(input=input, weight=weight, bias=bias)
    check_float(xp, "input", input)
    if input.ndim < 1:
        raise ValueError(
            f"input: expected an array of at least 1 dimension (..., in_features), "
            f"got shape {tuple(input.shape)}"
        )
    check_ndim("weight", weight, (2,), "(out_features, in_features)")
    check_same_dtype("weight", weight, "input", input)
    out_features, in_features = int(weight.shape[0]), int(weight.shape[1])
    if input.shape[-1] != in_features:
        raise ValueError(
            f"weight: expects in_features={in_features} (weight shape {tuple(weight.shape)}), "
            f"but input has {input.shape[-1]} features in its last dimension "
            f"(input shape {tuple(input.shape)})"
        )
    if bias is not None:
        check_same_dtype("bias", bias, "input", input)
        check_shape("bias", bias, (out_features,), "one value per output feature")
    return xp, math.prod(int(s) for s in input.shape[:-1]), out_features


def _linear_forward(xp: Any, x2: Any, weight: Any, bias: Any, out_shape: tuple[int, ...]) -> Any:
    y = x2 @ xp.matrix_transpose(weight)
    if bias is not None:
        y = y + bias
    return xp.reshape(y, out_shape)


@primitive
def linear(input: Any, weight: Any, bias: Any = None) -> Any:
    """Affine map on the last axis: ``input @ weight.T + bias``.

    Parameters
    ----------
    input : array
        ``(..., in_features)``, floating point; any number of leading dimensions.
    weight : array
        ``(out_features, in_features)``, same dtype as ``input``.
    bias : array, optional
        ``(out_features,)``.

    Returns
    -------
    array
        ``(..., out_features)``. The pullback sums the weight and bias gradients over all
        leading dimensions.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[1.0, 2.0]])
    >>> w = xpnet.asarray([[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    >>> xpnet.to_numpy(F.linear(x, w, xpnet.asarray([0.5, 0.0, 0.0]))).tolist()
    [[1.5, 3.0, -2.0]]
    """
    xp, rows, out_features = _linear_setup(input, weight, bias)
    x2 = xp.reshape(input, (rows, int(weight.shape[1])))
    return _linear_forward(xp, x2, weight, bias, (*input.shape[:-1], out_features))


@defvjp(linear, "input", "weight", "bias")
def _linear_vjp(input: Any, weight: Any, bias: Any = None) -> tuple[Any, Pullback]:
    xp, rows, out_features = _linear_setup(input, weight, bias)
    x2 = xp.reshape(input, (rows, int(weight.shape[1])))
    y = _linear_forward(xp, x2, weight, bias, (*input.shape[:-1], out_features))

    def pullback(dy: Any) -> tuple[Any, Any, Any]:
        g2 = xp.reshape(dy, (rows, out_features))
        dx = xp.reshape(g2 @ weight, tuple(input.shape))
        dweight = xp.matrix_transpose(g2) @ x2
        dbias = None if bias is None else xp.sum(g2, axis=0)
        return dx, dweight, dbias

    return y, pullback


# -------------------------------------------------------------------------- flatten


def _check_dim(name: str, dim: Any, ndim: int) -> int:
    index = integer(dim)
    if index is None:
        raise TypeError(f"{name}: expected an int, got {type(dim).__name__} ({dim!r})")
    size = max(ndim, 1)  # a 0-d array is flattened as if it had one axis, as in torch
    if not -size <= index < size:
        raise ValueError(
            f"{name}: expected an int in [{-size}, {size - 1}] for a {ndim}-D input, got {index}"
        )
    return index % size


def _flat_shape(input: Any, start_dim: Any, end_dim: Any) -> tuple[int, ...]:
    start = _check_dim("start_dim", start_dim, input.ndim)
    end = _check_dim("end_dim", end_dim, input.ndim)
    if start > end:
        raise ValueError(
            f"start_dim: must not come after end_dim, got start_dim={start_dim} "
            f"(axis {start}) and end_dim={end_dim} (axis {end})"
        )
    shape = tuple(int(s) for s in input.shape) or (1,)
    return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])


@primitive
def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    """Merge the axes ``start_dim`` to ``end_dim`` (inclusive) into one, as ``torch.flatten``.

    Parameters
    ----------
    input : array
        Any shape and any dtype (a pure reshape); a 0-d array becomes shape ``(1,)``.
    start_dim : int, default 0
        First axis to merge; negative counts from the end.
    end_dim : int, default -1
        Last axis to merge; must not come before ``start_dim``.

    Returns
    -------
    array
        The same elements in the same (row-major) order; the pullback reshapes back.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> F.flatten(xpnet.asarray([[[1.0, 2.0], [3.0, 4.0]]]), start_dim=1).shape
    (1, 4)
    """
    xp = namespace_of(input=input)
    return xp.reshape(input, _flat_shape(input, start_dim, end_dim))


@defvjp(flatten, "input")
def _flatten_vjp(input: Any, start_dim: int = 0, end_dim: int = -1) -> tuple[Any, Pullback]:
    xp = namespace_of(input=input)
    y = xp.reshape(input, _flat_shape(input, start_dim, end_dim))
    shape = tuple(input.shape)

    def pullback(dy: Any) -> tuple[Any]:
        return (xp.reshape(dy, shape),)

    return y, pullback


# -------------------------------------------------------------------------- dropout


def _dropout_noise(
    input: Any,
    p: Any,
    training: Any,
    inplace: Any,
    rng: Any,
    mask_shape: tuple[int, ...] | None = None,
) -> tuple[Any, Any]:
    """Check the arguments; return ``(xp, noise)`` with ``noise`` None when inactive.

    ``noise`` is ``mask / (1 - p)`` in ``input``'s dtype, of ``mask_shape`` (the input's by
    default; one value per channel for the channel dropouts); the output is
    ``input * noise`` (so NaN stays NaN even where dropped, as in torch).
    """
    xp = namespace_of(input=input)
    check_float(xp, "input", input)
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p: expected a real number in [0, 1], got {type(p).__name__} ({p!r})")
    if not 0.0 <= float(p) <= 1.0:  # also rejects nan
        raise ValueError(f"p: expected a dropout probability in [0, 1], got {p!r}")
    del inplace  # a hint only: see dropout's docstring
    p = float(p)
    if not training or p == 0.0:
        return xp, None
    shape = tuple(int(s) for s in input.shape) if mask_shape is None else mask_shape
    if p == 1.0:
        return xp, xp.zeros(shape, dtype=input.dtype, device=array_api_compat.device(input))
    # The standard has no random module: draw on the host, so one seed gives one mask on
    # every backend, then move the mask to the input's device.
    keep = keep_mask(rng, shape, p)
    mask = xp.asarray(keep, device=None if is_lazy(input) else array_api_compat.device(input))
    return xp, xp.astype(mask, input.dtype) * (1.0 / (1.0 - p))


@primitive
def dropout(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    rng: Any = None,
) -> Any:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    Parameters
    ----------
    input : array
        Floating point, any shape.
    p : float, default 0.5
        Probability of zeroing an element, in [0, 1].
    training : bool, default True
        When false (evaluation), ``input`` is returned unchanged.
    inplace : bool, default False
        Accepted for torch compatibility and ignored: xpnet never writes into arrays
        (some backends' arrays are immutable), so the result is always a new array,
        holding what torch's in-place call would leave in ``input``. Use the result.
    rng : numpy.random.Generator, int or None, keyword-only
        Host generator for the keep mask (see :func:`xpnet.random.resolve_rng`): a
        generator, a seed, or ``None`` for xpnet's global generator (:func:`xpnet.seed`).
        The mask is ``rng.random(input.shape) >= p``, so a seed gives the same mask on
        every backend.

    Returns
    -------
    array
        Same shape, dtype, namespace and device as ``input``: ``input`` itself when
        ``training`` is false or ``p == 0``, zeros when ``p == 1``. The pullback applies
        the same mask and scale to the cotangent.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> y = F.dropout(xpnet.asarray([1.0, 1.0, 1.0, 1.0]), p=0.5, rng=0)
    >>> sorted(set(xpnet.to_numpy(y).tolist()))
    [0.0, 2.0]
    """
    _, noise = _dropout_noise(input, p, training, inplace, rng)
    return input if noise is None else input * noise


@defvjp(dropout, "input")
def _dropout_vjp(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    rng: Any = None,
) -> tuple[Any, Pullback]:
    _, noise = _dropout_noise(input, p, training, inplace, rng)

    def pullback(dy: Any) -> tuple[Any]:
        return (dy if noise is None else dy * noise,)

    return (input if noise is None else input * noise), pullback


# ---------------------------------------------------------------- channel dropouts


def _channel_mask_shape(input: Any, spatial: int, name: str) -> tuple[int, ...]:
    """One mask value per channel: ``(N, C, 1, ...)``, or ``(C, 1, ...)`` unbatched."""
    if input.ndim not in (spatial + 1, spatial + 2):
        layout = ", ".join(["N", "C", *["L", "H, W", "D, H, W"][spatial - 1 : spatial]])
        raise ValueError(
            f"input: {name} expects ({layout}) or the same without N, got shape "
            f"{tuple(input.shape)}"
        )
    lead = tuple(int(n) for n in input.shape[: input.ndim - spatial])
    return lead + (1,) * spatial


def _channel_dropout(spatial: int, name: str) -> tuple[Any, Any]:
    def forward(
        input: Any, p: float = 0.5, training: bool = True, inplace: bool = False, *, rng: Any = None
    ) -> Any:
        shape = _channel_mask_shape(input, spatial, name)
        _, noise = _dropout_noise(input, p, training, inplace, rng, shape)
        return input if noise is None else input * noise

    def rule(
        input: Any, p: float = 0.5, training: bool = True, inplace: bool = False, *, rng: Any = None
    ) -> tuple[Any, Pullback]:
        shape = _channel_mask_shape(input, spatial, name)
        _, noise = _dropout_noise(input, p, training, inplace, rng, shape)

        def pullback(dy: Any) -> tuple[Any]:
            return (dy if noise is None else dy * noise,)

        return (input if noise is None else input * noise), pullback

    forward.__name__ = forward.__qualname__ = name
    # torch (2.x) still reads a 3-D input to dropout2d as (N, C, L), with a warning that
    # this will change to (C, H, W); xpnet implements the documented (C, H, W) reading.
    note = (
        "\n\n    A 3-D input is one unbatched ``(C, H, W)`` image, as torch documents (torch "
        "2.x itself\n    still treats it as ``(N, C, L)`` and warns that this will change)."
        if spatial == 2
        else ""
    )
    forward.__doc__ = f"""Zero whole channels with probability ``p`` (scaling the rest by
    ``1 / (1 - p)``), as ``torch.nn.functional.{name}``: each ``(sample, channel)`` of an
    input with {spatial} spatial axis(es) is kept or dropped together.{note}

    Parameters
    ----------
    input : array
        ``(N, C, *spatial)`` or ``(C, *spatial)``, floating point.
    p, training, inplace, rng
        As for :func:`dropout`; the mask is ``rng.random(mask_shape) >= p`` with one value
        per channel.

    Returns
    -------
    array
        ``input``'s shape, dtype, namespace and device.
    """
    return forward, rule


dropout1d, _dropout1d_rule = _channel_dropout(1, "dropout1d")
dropout2d, _dropout2d_rule = _channel_dropout(2, "dropout2d")
dropout3d, _dropout3d_rule = _channel_dropout(3, "dropout3d")
dropout1d = primitive(dropout1d)
dropout2d = primitive(dropout2d)
dropout3d = primitive(dropout3d)
defvjp(dropout1d, "input")(_dropout1d_rule)
defvjp(dropout2d, "input")(_dropout2d_rule)
defvjp(dropout3d, "input")(_dropout3d_rule)
