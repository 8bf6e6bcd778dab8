"""The bounds on the numbers that describe a run, in one place.

Each is checked where a command-line option is parsed and where a checkpoint is read, so a
run never starts with a value its own checkpoint would be refused for (a run that trains
for hours, then cannot be evaluated or resumed). The input size is bounded as a product as
well: each side within its bound can still ask a model for terabytes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["INT_BOUNDS", "MAX_INPUT_VALUES", "describe", "input_size_problem", "int_problem"]

#: name -> (lowest, highest) allowed, inclusive.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "batch_size": (1, 10**7),
    "epochs": (1, 10**9),
    "seed": (0, 2**63 - 1),
    "num_classes": (1, 10**6),
    "image_size": (1, 4096),
    "in_channels": (1, 4096),
    "workers": (1, 4096),
}

#: The most values one input image may have (channels x side x side): 4 x 1024 x 1024, a
#: 2048 x 2048 grey image. A model's first dense layer grows with it.
MAX_INPUT_VALUES = 2**22


def describe(name: str) -> str:
    """``"an integer from 1 to 10000000"``: what ``name`` must be."""
    low, high = INT_BOUNDS[name]
    return f"an integer from {low} to {high}"


def int_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for ``name`` (``None`` when it is within bounds)."""
    low, high = INT_BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"{name} should be {describe(name)}, found {value!r}"
    return None


def input_size_problem(in_channels: int, image_size: int) -> str | None:
    """What is wrong with an input of ``in_channels`` x ``image_size``² (``None`` if fine)."""
    values = in_channels * image_size * image_size
    if values > MAX_INPUT_VALUES:
        return (
            f"in_channels x image_size x image_size is {in_channels} x {image_size} x "
            f"{image_size} = {values:,} values per image, more than the {MAX_INPUT_VALUES:,} "
            "a model is built for"
        )
    return None
