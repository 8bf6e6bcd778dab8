"""What the layers share: argument checks, and the bases of layers without and with
parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ... import functional as F
from ..module import Module, ModulePullback


def _check_dtype(dtype: str | None) -> str:
    if dtype is None:
        return "float32"
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
    return dtype


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def _pair_repr(value: Any) -> str:
    return repr(tuple(value)) if isinstance(value, list | tuple) else repr(value)


class _Stateless(Module):
    """A layer without parameters: one op of :mod:`xpnet.functional` with fixed arguments."""

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        raise NotImplementedError

    def forward(self, x: Any) -> Any:
        op, args, kwargs = self._call()
        return op(x, *args, **kwargs)

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        op, args, kwargs = self._call()
        y, pullback = F.vjp(op, x, *args, **kwargs)

        def module_pullback(dy: Any) -> tuple[Any, dict[str, Any]]:
            return pullback(dy)[0], {}

        return y, module_pullback


class _Parametrized(Module):
    """A layer whose op takes ``(x, *parameters)`` in the order of ``_parameters``."""

    def _op(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        raise NotImplementedError

    def forward(self, x: Any) -> Any:
        op, kwargs = self._op()
        return op(x, *self._parameters.values(), **kwargs)

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        op, kwargs = self._op()
        names = list(self._parameters)
        first = 0 if input_grad else 1  # position 0 is the input
        argnums = range(first, 1 + len(names))
        y, pullback = F.vjp(op, x, *self._parameters.values(), argnums=argnums, **kwargs)

        def module_pullback(dy: Any) -> tuple[Any, dict[str, Any]]:
            dx, *grads = pullback(dy)
            return dx, {n: g for n, g in zip(names, grads, strict=True) if g is not None}

        return y, module_pullback
