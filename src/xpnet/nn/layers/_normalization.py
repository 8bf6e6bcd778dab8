"""Batch normalisation."""

from __future__ import annotations

from typing import Any

import array_api_compat

from ... import backends
from ... import functional as F
from ...functional._autodiff import primal
from .. import init
from ..module import Module
from ._base import _check_dtype, _positive_int


class BatchNorm2d(Module):
    """Batch normalisation over ``(N, C, H, W)`` inputs, with running statistics.

    In training mode it normalises with the batch statistics and replaces the
    ``running_mean`` / ``running_var`` buffers with their updated values (torch's
    momentum rule, unbiased variance) and counts the batch in ``num_batches_tracked``;
    in inference mode it uses the running statistics. ``momentum=None`` gives torch's
    cumulative average (``1 / num_batches_tracked``). With ``track_running_stats=False``
    there are no buffers and batch statistics are used in both modes.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        self.num_features = _positive_int("num_features", num_features)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = _check_dtype(dtype)
        shape = (num_features,)
        self.register_parameter(
            "weight", init.constant(shape, 1.0, dtype=dtype, device=device) if affine else None
        )
        self.register_parameter(
            "bias", init.zeros(shape, dtype=dtype, device=device) if affine else None
        )
        if track_running_stats:
            self.register_buffer("running_mean", init.zeros(shape, dtype=dtype, device=device))
            self.register_buffer(
                "running_var", init.constant(shape, 1.0, dtype=dtype, device=device)
            )
            self.register_buffer(
                "num_batches_tracked", init.constant((), 0, dtype="int64", device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _updates_statistics(self) -> bool:
        return self.training and self.track_running_stats

    def _arguments(self, x: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"input: expected a 4-D (N, {self.num_features}, H, W) array, "
                f"got shape {tuple(x.shape)}"
            )
        momentum = self.momentum
        if self._updates_statistics() and momentum is None:
            # torch's cumulative moving average: weight 1/n for the n-th batch.
            tracked = backends.to_numpy(self._buffers["num_batches_tracked"])
            momentum = 1.0 / (int(tracked) + 1)
        use_batch = self.training or not self.track_running_stats
        args = (
            x,
            self._buffers["running_mean"],
            self._buffers["running_var"],
            self._parameters["weight"],
            self._parameters["bias"],
        )
        return args, {
            "training": use_batch,
            "momentum": 0.0 if momentum is None else momentum,
            "eps": self.eps,
        }

    def _update(self, new_mean: Any, new_var: Any) -> None:
        if self._updates_statistics():
            # Statistics are state, not part of any gradient: keep their values only.
            self._buffers["running_mean"] = primal(new_mean)
            self._buffers["running_var"] = primal(new_var)
            count = self._buffers["num_batches_tracked"]
            xp = array_api_compat.array_namespace(count)
            # asarray: NumPy turns 0-d array arithmetic into a scalar; keep a 0-d array.
            self._buffers["num_batches_tracked"] = xp.asarray(
                count + 1, dtype=count.dtype, device=array_api_compat.device(count)
            )

    def forward(self, x: Any) -> Any:
        args, kwargs = self._arguments(x)
        y, new_mean, new_var = F.batch_norm(*args, **kwargs)
        self._update(new_mean, new_var)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )
