"""Index tables and other constant arrays that ops build once per shape and device.

On a GPU every array made from host data is a transfer, and every table built with array
operations costs launches; an op that needs the same gather index or one-hot offsets at
every step keeps them here instead, least recently used dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import array_api_compat

from ._validation import is_lazy

__all__ = ["cached_constant"]

_CAPACITY = 128
_constants: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def cached_constant(like: Any, key: Hashable, build: Callable[[Any, Any], Any]) -> Any:
    """The constant ``build(xp, device)`` for ``like``'s namespace and device, built once.

    Parameters
    ----------
    like : array
        Gives the namespace and device.
    key : hashable
        Everything the constant depends on besides the namespace and device (its kind and
        the shapes it serves).
    build : callable
        ``(xp, device) -> array or tuple of arrays``.

    Notes
    -----
    Inside a trace (``jax.jit``) the built arrays are tracers, constants of that trace
    only: they are returned without being kept.
    """
    xp = array_api_compat.array_namespace(like)
    device = None if is_lazy(like) else array_api_compat.device(like)
    full_key = (xp, str(device), key)
    found = _constants.get(full_key)
    if found is not None:
        _constants.move_to_end(full_key)
        return found
    value = build(xp, device)
    first = value[0] if isinstance(value, tuple) else value
    if not is_lazy(first):
        _constants[full_key] = value
        if len(_constants) > _CAPACITY:
            _constants.popitem(last=False)
    return value
