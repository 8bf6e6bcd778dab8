"""Activation layers (and Identity, Flatten, Dropout): each one op of
:mod:`xpnet.functional`; PReLU holds its learnable slopes."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ... import functional as F
from ..._numbers import real
from ...random import Generator, resolve_rng
from .. import init as nn_init
from ..module import Module
from ._base import _check_dtype, _Parametrized, _positive_int, _Stateless


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
        probability = real(p)
        if probability is None or not 0.0 <= probability <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        self.p = probability
        self.inplace = inplace
        self.rng = None if rng is None else resolve_rng(rng)

    def forward(self, x: Any) -> Any:
        return F.dropout(x, self.p, self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU6(_Stateless):
    """``min(max(x, 0), 6)``. ``inplace`` is a hint, as for :class:`ReLU`."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.relu6, (), {}


class ELU(_Stateless):
    """``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.elu, (self.alpha,), {}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(_Stateless):
    """Scaled ELU with the self-normalising constants."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.selu, (), {}


class SiLU(_Stateless):
    """``x * sigmoid(x)`` (swish)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.silu, (), {}


class Hardsigmoid(_Stateless):
    """``relu6(x + 3) / 6``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.hardsigmoid, (), {}


class Hardswish(_Stateless):
    """``x * relu6(x + 3) / 6``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.hardswish, (), {}


class Softplus(_Stateless):
    """``log(1 + exp(beta * x)) / beta``, linear above ``beta * x > threshold``."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.softplus, (self.beta, self.threshold), {}

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Mish(_Stateless):
    """``x * tanh(softplus(x))``."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.mish, (), {}


class LogSoftmax(Softmax):
    """Log-softmax along ``dim`` (torch's ``nn.LogSoftmax``; ``dim=None`` chooses as
    :class:`Softmax` does, with a warning)."""

    def _call_on(self, x: Any) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        _, args, kwargs = super()._call_on(x)
        return F.log_softmax, args, kwargs


class PReLU(_Parametrized):
    """Parametric ReLU: ``x`` if ``x > 0`` else ``weight * x``, with a learnable slope
    (``weight``, ``(num_parameters,)``) shared by all channels or one per channel (axis 1),
    initialised to ``init`` as in torch.

    Parameters
    ----------
    num_parameters : int, default 1
        1, or the number of channels.
    init : float, default 0.25
        The slopes' initial value.
    device, dtype
        As for :class:`Conv2d`.
    """

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        # Not self.num_parameters: that is Module's count of trainable scalars.
        self.slopes = _positive_int("num_parameters", num_parameters)
        self.register_parameter(
            "weight",
            nn_init.constant(
                (num_parameters,), float(init), dtype=_check_dtype(dtype), device=device
            ),
        )

    def _op(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        return F.prelu, {}

    def extra_repr(self) -> str:
        return f"num_parameters={self.slopes}"


class _ChannelDropout(Dropout):
    """Zero whole channels (see :func:`xpnet.functional.dropout2d`)."""

    _op = staticmethod(F.dropout2d)

    def forward(self, x: Any) -> Any:
        return self._op(x, self.p, self.training, rng=self.rng)


class Dropout1d(_ChannelDropout):
    """Channel dropout for ``(N, C, L)`` inputs (torch's ``nn.Dropout1d``)."""

    _op = staticmethod(F.dropout1d)


class Dropout2d(_ChannelDropout):
    """Channel dropout for ``(N, C, H, W)`` inputs (torch's ``nn.Dropout2d``)."""

    _op = staticmethod(F.dropout2d)


class Dropout3d(_ChannelDropout):
    """Channel dropout for ``(N, C, D, H, W)`` inputs (torch's ``nn.Dropout3d``)."""

    _op = staticmethod(F.dropout3d)
