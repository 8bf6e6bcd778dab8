"""``one_hot``: class indices as indicator vectors."""

from __future__ import annotations

import math
from typing import Any

import array_api_compat

from .._numbers import integer
from ._validation import namespace_of, reads_values

__all__ = ["one_hot"]


def one_hot(tensor: Any, num_classes: int = -1) -> Any:
    """Class indices as one-hot rows, as ``torch.nn.functional.one_hot``.

    Parameters
    ----------
    tensor : array
        Integer class indices, any shape.
    num_classes : int, default -1
        The length of the new last axis; -1 takes the largest index plus one (which reads
        the array back to the host, as torch does; give it to avoid that).

    Returns
    -------
    array
        int64, ``tensor.shape + (num_classes,)``: 1 at each index, 0 elsewhere. Integer
        results carry no gradient.

    Raises
    ------
    TypeError
        If ``tensor`` is not an integer array.
    ValueError
        If an index is negative or not below ``num_classes`` (checked where reading the
        values is free; see :func:`xpnet.config.value_checks`).

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> xpnet.to_numpy(F.one_hot(xpnet.asarray([0, 2]), 3)).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    xp = namespace_of(tensor=tensor)
    if not xp.isdtype(tensor.dtype, "integral"):
        raise TypeError(f"tensor: expected an integer array of class indices, got {tensor.dtype}")
    if integer(num_classes) is None or num_classes < -1:
        raise ValueError(f"num_classes: expected -1 or a non-negative int, got {num_classes!r}")
    if num_classes == -1:
        if math.prod(tensor.shape) == 0:
            raise ValueError("num_classes: cannot be inferred from an empty tensor; give it")
        num_classes = int(xp.max(tensor)) + 1
    if reads_values(tensor) and math.prod(tensor.shape):
        low, high = int(xp.min(tensor)), int(xp.max(tensor))
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"tensor: class indices must lie in [0, {num_classes}), got values from "
                f"{low} to {high}"
            )
    classes = xp.arange(num_classes, dtype=tensor.dtype, device=array_api_compat.device(tensor))
    return xp.astype(tensor[..., None] == classes, xp.int64)
