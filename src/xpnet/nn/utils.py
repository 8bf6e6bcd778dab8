"""Gradient clipping, as ``torch.nn.utils``: on the gradients ``value_and_grad`` returns.

xpnet's gradients are a dict of arrays, not attributes of parameters, so these take that
dict and replace its entries (the arrays themselves are never written into). Nothing here
reads a value back to the host, so they run inside a compiled step
(:func:`xpnet.compile_step`'s ``grad_transform``) as well as in a loop of your own.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import MutableMapping
from typing import Any

import array_api_compat

from ..functional._validation import reads_values

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _checked_grads(grads: Any) -> list[str]:
    if not isinstance(grads, MutableMapping):
        raise TypeError(
            "grads: expected the dict of gradients value_and_grad returns, got "
            f"{type(grads).__name__}"
        )
    return list(grads)


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} ({value!r})")
    return float(value)


def clip_grad_norm_(
    grads: MutableMapping[str, Any],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Any:
    """Scale all gradients together so that their total norm is at most ``max_norm``
    (``torch.nn.utils.clip_grad_norm_``).

    Parameters
    ----------
    grads : dict of arrays
        Replaced in place (new arrays under the same names).
    max_norm : float
        The largest total norm kept.
    norm_type : float, default 2.0
        The norm, ``math.inf`` for the largest absolute value.
    error_if_nonfinite : bool, default False
        Raise if the total norm is NaN or infinite. That reads the norm on the host: it is
        skipped where such a read is not free (a GPU, a traced step; see
        :func:`xpnet.config.value_checks`).

    Returns
    -------
    array
        The total norm before clipping (0-d, on the gradients' device).

    Notes
    -----
    As torch does, every gradient is multiplied by ``min(1, max_norm / (norm + 1e-6))``,
    so there is no branch on the value (no host read).

    Examples
    --------
    >>> import xpnet
    >>> from xpnet import nn
    >>> grads = {"w": xpnet.asarray([3.0, 4.0], dtype="float64")}
    >>> total = nn.utils.clip_grad_norm_(grads, 1.0)
    >>> float(total), [round(v, 6) for v in xpnet.to_numpy(grads["w"]).tolist()]
    (5.0, [0.6, 0.8])
    """
    names = _checked_grads(grads)
    max_norm, norm_type = _real("max_norm", max_norm), _real("norm_type", norm_type)
    if not names:
        raise ValueError("grads: no gradients to clip")
    first = grads[names[0]]
    xp = array_api_compat.array_namespace(first)
    # One flat buffer: a few launches whatever the number of tensors (CuPy concatenates
    # many small arrays in one kernel).
    flat = [xp.reshape(grads[n], (-1,)) for n in names]
    values = flat[0] if len(flat) == 1 else xp.concat(flat)
    if math.isinf(norm_type):
        total = xp.max(xp.abs(values))
    elif norm_type == 2.0:
        total = xp.sqrt(xp.sum(values * values))
    elif norm_type == 1.0:
        total = xp.sum(xp.abs(values))
    else:
        total = xp.sum(xp.abs(values) ** norm_type) ** (1.0 / norm_type)
        if total.dtype != values.dtype:  # NumPy 1.x promotes a 0-d float32 to a power
            total = xp.astype(total, values.dtype)
    if error_if_nonfinite and reads_values(total) and not math.isfinite(float(total)):
        raise FloatingPointError(
            f"the total norm of order {norm_type} of the gradients is {float(total)}; "
            "clipping would make them NaN (error_if_nonfinite=True)"
        )
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for name in names:
        grads[name] = grads[name] * scale
    return total


def clip_grad_value_(grads: MutableMapping[str, Any], clip_value: float) -> None:
    """Clip every gradient element to ``[-clip_value, clip_value]``
    (``torch.nn.utils.clip_grad_value_``); ``grads`` is replaced in place."""
    value = _real("clip_value", clip_value)
    for name in _checked_grads(grads):
        xp = array_api_compat.array_namespace(grads[name])
        grads[name] = xp.clip(grads[name], min=-value, max=value)
