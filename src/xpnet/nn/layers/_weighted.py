"""The fully connected layer (the convolutions are in :mod:`._conv`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ... import functional as F
from ...random import Generator, resolve_rng
from .. import init
from ._base import _check_dtype, _Parametrized, _positive_int


class Linear(_Parametrized):
    """Fully connected layer ``y = x @ weight.T + bias``, as ``torch.nn.Linear``.

    ``weight`` ``(out_features, in_features)`` is Kaiming-uniform with ``a = sqrt(5)``, i.e.
    ``U(-1/sqrt(in_features), 1/sqrt(in_features))``, and so is ``bias``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of the last axis of the input and of the output.
    bias : bool, default True
        Learn an additive bias.
    device, dtype, rng
        As for :class:`~xpnet.nn.Conv2d`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: str | None = None,
        *,
        rng: Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _positive_int("in_features", in_features)
        self.out_features = _positive_int("out_features", out_features)
        dtype = _check_dtype(dtype)
        generator = resolve_rng(rng)
        shape = (out_features, in_features)
        self.register_parameter(
            "weight",
            init.kaiming_uniform(shape, a=math.sqrt(5), rng=generator, dtype=dtype, device=device),
        )
        bound = 1.0 / math.sqrt(in_features)
        self.register_parameter(
            "bias",
            init.uniform((out_features,), -bound, bound, rng=generator, dtype=dtype, device=device)
            if bias
            else None,
        )

    def _op(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        return F.linear, {}

    def extra_repr(self) -> str:
        bias = self._parameters["bias"] is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"
