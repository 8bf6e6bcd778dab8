"""Dropout masks for compiled steps: found once, then drawn on the host and passed in.

A compiled step must not bake one random draw into its program. So the masks a model asks
for (through :func:`xpnet.random.keep_mask`) are recorded once, and before every call of the
compiled step they are drawn on the host, from the same generators in the same order as an
eager step would draw them, and handed to the step as inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...random import draw_keep_mask

__all__ = ["MaskRecorder", "MaskReplay", "MaskSpec", "draw"]

#: The masks of one step: ``(rng argument, shape, p)`` in the order they are drawn.
MaskSpec = list[tuple[Any, tuple[int, ...], float]]


def draw(spec: MaskSpec) -> list[np.ndarray]:
    """This step's masks on the host, drawn exactly as an eager step draws them."""
    return [draw_keep_mask(rng, shape, p) for rng, shape, p in spec]


class MaskRecorder:
    """Records the masks a step asks for. With ``real``, draws them as usual (an eager
    step); without, hands out placeholders (a trace that only discovers them)."""

    def __init__(self, real: bool) -> None:
        self.real = real
        self.spec: MaskSpec = []

    def keep_mask(self, rng: Any, shape: tuple[int, ...], p: float) -> Any:
        self.spec.append((rng, tuple(shape), float(p)))
        if self.real:
            return draw(self.spec[-1:])[0]
        return np.ones(shape, dtype=bool)


class MaskReplay:
    """Hands a step the masks given to it (traced inputs or static buffers), in order."""

    def __init__(self, masks: list[Any]) -> None:
        self.masks = masks
        self.position = 0

    def keep_mask(self, rng: Any, shape: tuple[int, ...], p: float) -> Any:
        if self.position >= len(self.masks) or tuple(self.masks[self.position].shape) != shape:
            raise RuntimeError(
                "compiled step: the model asked for other dropout masks than when it was "
                "compiled (did its structure change?); call xpnet.compile_step again"
            )
        mask = self.masks[self.position]
        self.position += 1
        return mask
