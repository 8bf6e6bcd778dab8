"""Padding and resizing written from the definitions in float64, entry by entry."""

from __future__ import annotations

import itertools
import math

import numpy as np


def pad_source(index: int, size: int, mode: str) -> int | None:
    """The input entry an output position ``index`` (in input coordinates, so negative
    before the start) reads under ``mode``; ``None`` for the constant fill."""
    if 0 <= index < size:
        return index
    if mode == "constant":
        return None
    if mode == "replicate":
        return 0 if index < 0 else size - 1
    if mode == "circular":
        return index % size
    # reflect: mirror about the first and last entries
    return -index if index < 0 else 2 * (size - 1) - index


def pad_loops(
    x: np.ndarray, pad: tuple[int, ...], mode: str, value: float = 0.0
) -> tuple[np.ndarray, list[tuple[tuple[int, ...], tuple[int, ...] | None]]]:
    """``F.pad`` by visiting every output element; also returns each output element's
    source (``None`` for the fill), from which the pullback is the sum over readers."""
    befores = [0] * x.ndim
    afters = [0] * x.ndim
    for k in range(len(pad) // 2):
        befores[x.ndim - 1 - k], afters[x.ndim - 1 - k] = pad[2 * k], pad[2 * k + 1]
    shape = tuple(n + b + a for n, b, a in zip(x.shape, befores, afters, strict=True))
    out = np.empty(shape)
    sources = []
    for position in itertools.product(*(range(n) for n in shape)):
        source = []
        for axis, p in enumerate(position):
            s = pad_source(p - befores[axis], x.shape[axis], mode)
            if s is None:
                source = None
                break
            source.append(s)
        out[position] = value if source is None else x[tuple(source)]
        sources.append((position, None if source is None else tuple(source)))
    return out, sources


def pad_pullback_loops(
    x_shape: tuple[int, ...],
    dy: np.ndarray,
    sources: list[tuple[tuple[int, ...], tuple[int, ...] | None]],
) -> np.ndarray:
    """Sum each output element's cotangent into the input element it read."""
    dx = np.zeros(x_shape)
    for position, source in sources:
        if source is not None:
            dx[source] += dy[position]
    return dx


def interpolate_loops(
    x: np.ndarray, out: tuple[int, ...], mode: str, align_corners: bool = False,
    scales: tuple[float | None, ...] | None = None,
) -> np.ndarray:  # fmt: skip
    """Resize a batched ``(N, C, *size)`` array entry by entry from torch's definitions,
    in float64: nearest reads ``floor(o * in / out)`` (``floor((o + 0.5) * in / out)`` for
    nearest-exact); linear blends the entries around ``(o + 0.5) * in / out - 0.5``
    (clamped at 0), or ``o * (in - 1) / (out - 1)`` with ``align_corners``; ``scales[a]``
    replaces ``out / in`` on axis ``a`` where given."""
    size = x.shape[2:]
    scales = scales or (None,) * len(size)

    def ratio(a: int) -> float:
        return 1.0 / scales[a] if scales[a] is not None else size[a] / out[a]

    def taps(a: int, o: int) -> list[tuple[int, float]]:
        n = size[a]
        if mode in ("nearest", "nearest-exact"):
            shift = 0.5 if mode == "nearest-exact" else 0.0
            return [(min(math.floor((o + shift) * ratio(a)), n - 1), 1.0)]
        if align_corners:
            source = o * (n - 1) / (out[a] - 1) if out[a] > 1 else 0.0
        else:
            source = max((o + 0.5) * ratio(a) - 0.5, 0.0)
        first = min(math.floor(source), n - 1)
        second = min(first + 1, n - 1)
        weight = min(max(source - first, 0.0), 1.0)
        return [(first, 1.0 - weight), (second, weight)]

    y = np.zeros((*x.shape[:2], *out))
    for position in itertools.product(*(range(o) for o in out)):
        for combo in itertools.product(*(taps(a, o) for a, o in enumerate(position))):
            source = tuple(index for index, _ in combo)
            weight = math.prod(w for _, w in combo)
            y[(slice(None), slice(None), *position)] += (
                weight * x[(slice(None), slice(None), *source)]
            )
    return y


def pixel_shuffle_loops(x: np.ndarray, r: int) -> np.ndarray:
    """Output ``[..., c, h * r + i, w * r + j]`` is input ``[..., c * r * r + i * r + j, h, w]``."""
    *lead, channels, height, width = x.shape
    c = channels // (r * r)
    y = np.zeros((*lead, c, height * r, width * r))
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                y[..., ch, i::r, j::r] = x[..., ch * r * r + i * r + j, :, :]
    return y
