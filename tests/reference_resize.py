"""Padding (and, later, resizing) written from the definitions in float64 with index maps."""

from __future__ import annotations

import itertools

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
