"""What the layers share: argument checks, and the bases of layers without and with
parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..._numbers import count
from ..module import Module


def _check_dtype(dtype: str | None) -> str:
    if dtype is None:
        return "float32"
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    return dtype


def _positive_int(name: str, value: Any) -> int:
    # NumPy's integer scalars are ints here, as for torch.
    return count(name, value)


def _pair_repr(value: Any) -> str:
    return repr(tuple(value)) if isinstance(value, list | tuple) else repr(value)


class _Stateless(Module):
    """A layer without parameters: one op of :mod:`xpnet.functional` with fixed arguments."""

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        raise NotImplementedError

    def forward(self, x: Any) -> Any:
        op, args, kwargs = self._call()
        return op(x, *args, **kwargs)


class _Parametrized(Module):
    """A layer whose op takes ``(x, *parameters)`` in the order of ``_parameters``."""

    def _op(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        raise NotImplementedError

    def forward(self, x: Any) -> Any:
        op, kwargs = self._op()
        return op(x, *self._parameters.values(), **kwargs)
