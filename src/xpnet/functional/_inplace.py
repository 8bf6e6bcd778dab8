"""Arithmetic into an array the caller has just made, where the backend allows it.

NumPy (and CuPy, torch) hand each new array fresh memory, and on the CPU a large fresh
array is page-faulted in as it is first written: adding into a temporary that nothing else
holds costs one pass over memory that is already mapped, where ``a + b`` costs a new array.
JAX's arrays are immutable, and there the ordinary operator runs instead.

Only for arrays the caller owns: made by this op, seen by nobody else (not an input, not a
view of one, not saved for a pullback that reads it later).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import array_api_compat

__all__ = ["add_into", "mul_into", "sub_into"]


def _into(inplace: Callable[[Any, Any], Any], plain: Callable[[Any, Any], Any]) -> Any:
    def apply(owned: Any, other: Any) -> Any:
        if array_api_compat.is_writeable_array(owned):
            return inplace(owned, other)
        return plain(owned, other)

    return apply


#: ``owned + other``, written into ``owned`` where arrays are writeable.
add_into = _into(operator.iadd, operator.add)
#: ``owned - other``, written into ``owned`` where arrays are writeable.
sub_into = _into(operator.isub, operator.sub)
#: ``owned * other``, written into ``owned`` where arrays are writeable.
mul_into = _into(operator.imul, operator.mul)
