"""Resizing: ``interpolate`` (nearest, linear, bilinear, trilinear, area) and
``pixel_shuffle`` / ``pixel_unshuffle``, as torch's.

Interpolation is separable: along each spatial axis every output entry reads one input
entry (nearest) or blends two (linear), at the positions torch computes, with its
arithmetic in its precision. The forward gathers those entries with ``take``; the
pullback, a scatter-add the standard lacks, is the product with the transposed
``(out, in)`` interpolation matrix of each axis. Positions, weights and matrices are
computed on the device: no host round trip, and nothing that stops ``jax.jit``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import array_api_compat

from .._numbers import count
from ._autodiff import Pullback, defvjp, primitive
from ._validation import check_float, namespace_of
from .pooling._adaptive import _adaptive_avg

__all__ = ["interpolate", "pixel_shuffle", "pixel_unshuffle"]

INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")
_LINEAR_RANK = {"linear": 1, "bilinear": 2, "trilinear": 3}
_LAYOUT = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _per_axis(name: str, value: Any, rank: int, kind: type) -> list[Any]:
    values = list(value) if isinstance(value, (tuple, list)) else [value] * rank
    if len(values) != rank:
        raise ValueError(f"{name}: expected one value per spatial axis ({rank}), got {value!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, kind):
            raise TypeError(f"{name}: expected {kind.__name__} values, got {value!r}")
    return values


def _resolve(
    input: Any, size: Any, scale_factor: Any, mode: Any, align_corners: Any,
    recompute_scale_factor: Any, antialias: Any,
) -> tuple[Any, list[int], list[float | None], bool]:  # fmt: skip
    """Check ``interpolate``'s arguments; return the namespace, the output size and, per
    axis, the scale torch uses (``None``: from the sizes), and ``align_corners``."""
    xp = namespace_of(input=input)
    if mode not in INTERPOLATE_MODES:
        raise ValueError(
            f"mode: expected one of {', '.join(map(repr, INTERPOLATE_MODES))}, got {mode!r}"
        )
    rank = input.ndim - 2
    if rank not in (1, 2, 3):
        raise ValueError(
            f"input: expected a 3-D, 4-D or 5-D array (N, C, *spatial), got shape "
            f"{tuple(input.shape)}"
        )
    check_float(xp, "input", input)
    if mode in _LINEAR_RANK and _LINEAR_RANK[mode] != rank:
        wanted = _LINEAR_RANK[mode]
        raise ValueError(
            f"mode: {mode!r} interpolates {_LAYOUT[wanted]} inputs ({wanted + 2}-D), got shape "
            f"{tuple(input.shape)}"
        )
    if align_corners is not None and mode not in _LINEAR_RANK:
        raise ValueError(
            f"align_corners: only the linear modes take it (as in torch), got mode {mode!r}"
        )
    if antialias:
        raise ValueError("antialias: anti-aliased resizing is not supported; pass False")
    if (size is None) == (scale_factor is None):
        raise ValueError("size, scale_factor: expected exactly one of them")
    sizes = [int(n) for n in input.shape[2:]]
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor: not meaningful with an explicit size")
        out = _per_axis("size", size, rank, int)
        if min(out) < 1:
            raise ValueError(f"size: expected positive sizes, got {size!r}")
        return xp, out, [None] * rank, bool(align_corners)
    factors = [float(f) for f in _per_axis("scale_factor", scale_factor, rank, numbers.Real)]
    if not all(0 < f < math.inf for f in factors):  # NaN fails too
        raise ValueError(f"scale_factor: expected positive finite values, got {scale_factor!r}")
    out = [math.floor(n * f) for n, f in zip(sizes, factors, strict=True)]
    if min(out) < 1:
        raise ValueError(
            f"scale_factor: {scale_factor!r} gives an empty output for spatial size {sizes}"
        )
    recompute = bool(recompute_scale_factor) or mode == "area"
    scales: list[float | None] = [None] * rank if recompute else list(factors)
    return xp, out, scales, bool(align_corners)


def _nearest_table(xp: Any, n: int, out: int, scale: float | None, exact: bool, device: Any) -> Any:
    """torch's nearest source of each output entry, in float32 arithmetic as torch's."""
    if out == n:  # torch's shortcuts, exact whatever the float arithmetic
        return xp.arange(out, dtype=xp.int64, device=device)
    if not exact and out == 2 * n:
        return xp.arange(out, dtype=xp.int64, device=device) // 2

    def single(value: float) -> Any:
        return xp.asarray(value, dtype=xp.float32, device=device)

    ratio = single(1.0 / scale) if scale is not None else single(n) / single(out)
    positions = xp.arange(out, dtype=xp.float32, device=device) + (0.5 if exact else 0.0)
    return xp.clip(xp.astype(xp.floor(positions * ratio), xp.int64), max=n - 1)


def _linear_table(
    xp: Any, n: int, out: int, scale: float | None, align_corners: bool, like: Any
) -> tuple[Any, Any, Any]:
    """torch's two sources of each output entry and the second's weight, computed in
    ``like``'s dtype as torch computes them (float for float32, double for float64)."""
    device = array_api_compat.device(like)

    def real(value: float) -> Any:
        return xp.asarray(value, dtype=like.dtype, device=device)

    positions = xp.arange(out, dtype=like.dtype, device=device)
    if align_corners:
        ratio = real(n - 1) / real(out - 1) if out > 1 else real(0.0)
        source = ratio * positions
    else:
        ratio = real(1.0 / scale) if scale is not None else real(n) / real(out)
        source = xp.clip(ratio * (positions + 0.5) - 0.5, min=0.0)
    first = xp.clip(xp.astype(xp.floor(source), xp.int64), max=n - 1)
    second = xp.clip(first + 1, max=n - 1)
    weight = xp.clip(source - xp.astype(first, like.dtype), min=0.0, max=1.0)
    return first, second, weight


def _matrix(xp: Any, n: int, sources: list[tuple[Any, Any]], like: Any) -> Any:
    """The ``(out, n)`` interpolation matrix: row ``o`` holds each source's weight (built
    by one-hot comparisons, on the device)."""
    positions = xp.arange(n, dtype=xp.int64, device=array_api_compat.device(like))
    total = None
    for index, weight in sources:
        hit = xp.expand_dims(index, axis=1) == positions
        part = xp.where(hit, xp.expand_dims(weight, axis=1), 0.0)
        total = part if total is None else total + part
    return total


def _axis_shape(rank: int, axis: int, length: int) -> tuple[int, ...]:
    """A shape that broadcasts a per-entry weight along spatial ``axis`` of a batched array."""
    return (length,) + (1,) * (rank - 1 - axis)


def _contract(xp: Any, x: Any, matrix: Any, axis: int) -> Any:
    """``x`` with spatial ``axis`` (an index into ``x.shape``) replaced by ``matrix @ it``."""
    if axis == x.ndim - 1:
        return x @ xp.matrix_transpose(matrix)
    shape = tuple(int(s) for s in x.shape)
    merged = xp.reshape(x, (*shape[:axis], shape[axis], math.prod(shape[axis + 1 :])))
    return xp.reshape(matrix @ merged, (*shape[:axis], int(matrix.shape[0]), *shape[axis + 1 :]))


def _interpolate(
    input: Any, size: Any, scale_factor: Any, mode: str, align_corners: Any,
    recompute_scale_factor: Any, antialias: Any,
) -> tuple[Any, Pullback]:  # fmt: skip
    xp, out, scales, corners = _resolve(
        input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias
    )
    if mode == "area":  # torch's 'area' is adaptive average pooling to the size
        return _adaptive_avg(len(out), input, tuple(out))
    rank = len(out)
    device = array_api_compat.device(input)
    matrices = []
    y = input
    for axis, (n, o, scale) in enumerate(zip(input.shape[2:], out, scales, strict=True)):
        n = int(n)
        if mode in ("nearest", "nearest-exact"):
            table = _nearest_table(xp, n, o, scale, mode == "nearest-exact", device)
            y = xp.take(y, table, axis=2 + axis)
            ones = xp.ones((o,), dtype=input.dtype, device=device)
            matrices.append(_matrix(xp, n, [(table, ones)], input))
            continue
        first, second, weight = _linear_table(xp, n, o, scale, corners, input)
        w1 = xp.reshape(weight, _axis_shape(rank, axis, o))
        near = xp.take(y, first, axis=2 + axis)
        far = xp.take(y, second, axis=2 + axis)
        y = near * (1 - w1) + far * w1
        matrices.append(_matrix(xp, n, [(first, 1 - weight), (second, weight)], input))

    def pullback(dy: Any) -> tuple[Any]:
        for axis in reversed(range(rank)):
            dy = _contract(xp, dy, xp.matrix_transpose(matrices[axis]), 2 + axis)
        return (dy,)

    return y, pullback


@primitive
def interpolate(
    input: Any,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Any:
    """Resize the spatial axes, as ``torch.nn.functional.interpolate``.

    Parameters
    ----------
    input : array
        ``(N, C, L)``, ``(N, C, H, W)`` or ``(N, C, D, H, W)``; floating point.
    size : int or sequence of int, optional
        The output's spatial size (one int for every axis, or one per axis).
    scale_factor : float or sequence of float, optional
        Multiplier of each spatial size (the output size is floored). Exactly one of
        ``size`` and ``scale_factor``.
    mode : {'nearest', 'nearest-exact', 'linear', 'bilinear', 'trilinear', 'area'}
        ``'nearest'`` reads entry ``floor(o * scale)`` (torch's rule, which shifts the
        image by half a pixel; ``'nearest-exact'`` reads ``floor((o + 0.5) * scale)``).
        ``'linear'``, ``'bilinear'`` and ``'trilinear'`` blend the two nearest entries
        per axis (for 3-, 4- and 5-D inputs). ``'area'`` is adaptive average pooling.
    align_corners : bool, optional
        Linear modes only: ``True`` maps the corner entries of input and output onto
        each other; ``False`` (the default) maps the corners of the pixels.
    recompute_scale_factor : bool, optional
        With ``scale_factor``: compute positions from the output size instead of from
        ``scale_factor`` (which differ when the scaled size is not whole).
    antialias : bool, default False
        Not supported (an error when True).

    Returns
    -------
    array
        ``input``'s batch and channels with the new spatial size; same dtype, namespace
        and device.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[[1.0, 2.0, 4.0]]])
    >>> xpnet.to_numpy(F.interpolate(x, scale_factor=2)).tolist()
    [[[1.0, 1.0, 2.0, 2.0, 4.0, 4.0]]]
    >>> xpnet.to_numpy(F.interpolate(x, size=5, mode="linear", align_corners=True)).tolist()
    [[[1.0, 1.5, 2.0, 3.0, 4.0]]]
    """
    args = (input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    return _interpolate(*args)[0]


@defvjp(interpolate, "input")
def _interpolate_vjp(
    input: Any,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> tuple[Any, Pullback]:
    args = (input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    return _interpolate(*args)


# ----------------------------------------------------------------------- pixel shuffle


def _check_factor(name: str, value: Any) -> int:
    return count(name, value)


def _shuffle(input: Any, r: int) -> Any:
    """``(*, C * r * r, H, W)`` -> ``(*, C, H * r, W * r)``."""
    xp = namespace_of(input=input)
    *lead, channels, height, width = (int(s) for s in input.shape)
    c = channels // (r * r)
    x = xp.reshape(input, (-1, c, r, r, height, width))
    x = xp.permute_dims(x, (0, 1, 4, 2, 5, 3))  # (B, C, H, r, W, r)
    return xp.reshape(x, (*lead, c, height * r, width * r))


def _unshuffle(input: Any, r: int) -> Any:
    """``(*, C, H * r, W * r)`` -> ``(*, C * r * r, H, W)``."""
    xp = namespace_of(input=input)
    *lead, c, height, width = (int(s) for s in input.shape)
    x = xp.reshape(input, (-1, c, height // r, r, width // r, r))
    x = xp.permute_dims(x, (0, 1, 3, 5, 2, 4))  # (B, C, r, r, H, W)
    return xp.reshape(x, (*lead, c * r * r, height // r, width // r))


def _check_shuffle(input: Any, r: int) -> None:
    namespace_of(input=input)
    if input.ndim < 3:
        raise ValueError(
            f"input: expected (*, C * r^2, H, W), at least 3-D, got shape {tuple(input.shape)}"
        )
    if int(input.shape[-3]) % (r * r):
        raise ValueError(
            f"input: pixel_shuffle needs channels divisible by upscale_factor^2 = {r * r}, "
            f"got {int(input.shape[-3])} (shape {tuple(input.shape)})"
        )


def _check_unshuffle(input: Any, r: int) -> None:
    namespace_of(input=input)
    if input.ndim < 3:
        raise ValueError(
            f"input: expected (*, C, H * r, W * r), at least 3-D, got shape {tuple(input.shape)}"
        )
    if int(input.shape[-2]) % r or int(input.shape[-1]) % r:
        raise ValueError(
            f"input: pixel_unshuffle needs height and width divisible by downscale_factor={r}, "
            f"got shape {tuple(input.shape)}"
        )


@primitive
def pixel_shuffle(input: Any, upscale_factor: int) -> Any:
    """Move channels to space, as ``torch.nn.functional.pixel_shuffle``:
    ``(*, C * r^2, H, W)`` to ``(*, C, H * r, W * r)`` (output channel ``c``, pixel
    ``(h * r + i, w * r + j)`` is input channel ``c * r^2 + i * r + j``, pixel ``(h, w)``).

    Parameters
    ----------
    input : array
        At least 3-D, channels divisible by ``upscale_factor ** 2``; any dtype.
    upscale_factor : int
        ``r``; positive.

    Returns
    -------
    array
        The same entries, rearranged (the pullback rearranges back).
    """
    r = _check_factor("upscale_factor", upscale_factor)
    _check_shuffle(input, r)
    return _shuffle(input, r)


@defvjp(pixel_shuffle, "input")
def _pixel_shuffle_vjp(input: Any, upscale_factor: int) -> tuple[Any, Pullback]:
    r = _check_factor("upscale_factor", upscale_factor)
    _check_shuffle(input, r)
    return _shuffle(input, r), lambda dy: (_unshuffle(dy, r),)


@primitive
def pixel_unshuffle(input: Any, downscale_factor: int) -> Any:
    """Move space to channels, the inverse of :func:`pixel_shuffle`, as
    ``torch.nn.functional.pixel_unshuffle``: ``(*, C, H * r, W * r)`` to
    ``(*, C * r^2, H, W)``.

    Parameters
    ----------
    input : array
        At least 3-D, height and width divisible by ``downscale_factor``; any dtype.
    downscale_factor : int
        ``r``; positive.

    Returns
    -------
    array
        The same entries, rearranged.
    """
    r = _check_factor("downscale_factor", downscale_factor)
    _check_unshuffle(input, r)
    return _unshuffle(input, r)


@defvjp(pixel_unshuffle, "input")
def _pixel_unshuffle_vjp(input: Any, downscale_factor: int) -> tuple[Any, Pullback]:
    r = _check_factor("downscale_factor", downscale_factor)
    _check_unshuffle(input, r)
    return _unshuffle(input, r), lambda dy: (_shuffle(dy, r),)
