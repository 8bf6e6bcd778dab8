"""Layers without parameters that act element by element (and Flatten, Dropout)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ... import functional as F
from ...random import Generator, resolve_rng
from ..module import Module
from ._base import _Stateless


class Identity(_Stateless):
    """Returns its input."""

    def forward(self, x: Any) -> Any:
        return x


class ReLU(_Stateless):
    """``max(x, 0)``. ``inplace`` is accepted for torch compatibility; xpnet never writes
    in place, and the result is the same."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.relu, (), {}


class LeakyReLU(_Stateless):
    """``x`` if ``x > 0`` else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.leaky_relu, (self.negative_slope,), {}

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class GELU(_Stateless):
    """Gaussian error linear unit; ``approximate`` is ``'none'`` or ``'tanh'``."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.gelu, (), {"approximate": self.approximate}

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(_Stateless):
    """Logistic sigmoid."""

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.sigmoid, (), {}


class Tanh(_Stateless):
    """Hyperbolic tangent."""

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.tanh, (), {}


class Softmax(_Stateless):
    """Softmax along ``dim``.

    ``dim=None`` follows torch's deprecated implicit choice (axis 0 for 0-, 1- and 3-D
    inputs, else axis 1) with a warning; pass ``dim`` explicitly.
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def _call_on(self, x: Any) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        dim = self.dim
        if dim is None:
            dim = 0 if x.ndim in (0, 1, 3) else 1
            warnings.warn(
                "Softmax: implicit dimension choice is deprecated (as in torch); "
                f"pass dim explicitly (using dim={dim} for a {x.ndim}-D input)",
                UserWarning,
                stacklevel=3,
            )
        return F.softmax, (dim,), {}

    def forward(self, x: Any) -> Any:
        op, args, kwargs = self._call_on(x)
        return op(x, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Flatten(_Stateless):
    """Merge dimensions ``start_dim`` to ``end_dim`` (by default all but the batch)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.flatten, (self.start_dim, self.end_dim), {}

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode, scaling the rest by
    ``1 / (1 - p)``; the identity in inference mode.

    Masks come from ``rng`` (a generator or seed, kept by the layer) or, if omitted, from
    xpnet's global generator (:func:`xpnet.seed`) at call time; the mask is drawn on the
    host, so a seed gives the same masks on every backend. ``inplace`` is accepted for
    torch compatibility and changes nothing (xpnet never writes in place).
    """

    def __init__(
        self, p: float = 0.5, inplace: bool = False, *, rng: Generator | int | None = None
    ) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        self.p = p
        self.inplace = inplace
        self.rng = None if rng is None else resolve_rng(rng)

    def forward(self, x: Any) -> Any:
        return F.dropout(x, self.p, self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"
