"""Normalisation layers: batch norm (1-D, 2-D, 3-D), layer norm, group norm and instance
norm (1-D, 2-D, 3-D), with torch's arguments, defaults and state_dict entries."""

from __future__ import annotations

from typing import Any

import array_api_compat

from ... import backends
from ... import functional as F
from ..._numbers import integer
from ...functional._autodiff import primal
from .. import init
from ..module import Module
from ._base import _check_dtype, _positive_int


def _init_batch_norm(
    layer: Module,
    num_features: int,
    eps: float,
    momentum: float | None,
    affine: bool,
    track_running_stats: bool,
    device: Any,
    dtype: str | None,
) -> None:
    """The parameters and buffers of a batch norm (torch's names and initial values)."""
    layer.num_features = _positive_int("num_features", num_features)
    layer.eps, layer.momentum = eps, momentum
    layer.affine, layer.track_running_stats = affine, track_running_stats
    dtype = _check_dtype(dtype)
    shape = (num_features,)
    layer.register_parameter(
        "weight", init.constant(shape, 1.0, dtype=dtype, device=device) if affine else None
    )
    layer.register_parameter(
        "bias", init.zeros(shape, dtype=dtype, device=device) if affine else None
    )
    if track_running_stats:
        layer.register_buffer("running_mean", init.zeros(shape, dtype=dtype, device=device))
        layer.register_buffer("running_var", init.constant(shape, 1.0, dtype=dtype, device=device))
        layer.register_buffer(
            "num_batches_tracked", init.constant((), 0, dtype="int64", device=device)
        )
    else:
        layer.register_buffer("running_mean", None)
        layer.register_buffer("running_var", None)
        layer.register_buffer("num_batches_tracked", None)


class _BatchNorm(Module):
    """Batch normalisation with running statistics (see :class:`BatchNorm2d`)."""

    #: The input ranks accepted, and how they are described in errors.
    _ranks: tuple[int, ...] = (4,)
    _layout = "(N, C, H, W)"

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
        _init_batch_norm(self, num_features, eps, momentum, affine, track_running_stats,
                         device, dtype)  # fmt: skip

    def _updates_statistics(self) -> bool:
        return self.training and self.track_running_stats

    def _arguments(self, x: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if x.ndim not in self._ranks or x.shape[1] != self.num_features:
            layout = self._layout.replace("C", str(self.num_features))
            raise ValueError(f"input: expected a {layout} array, got shape {tuple(x.shape)}")
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


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over ``(N, C, H, W)`` inputs, with running statistics.

    In training mode it normalises with the batch statistics and replaces the
    ``running_mean`` / ``running_var`` buffers with their updated values (torch's
    momentum rule, unbiased variance) and counts the batch in ``num_batches_tracked``;
    in inference mode it uses the running statistics. ``momentum=None`` gives torch's
    cumulative average (``1 / num_batches_tracked``). With ``track_running_stats=False``
    there are no buffers and batch statistics are used in both modes.
    """


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)`` inputs (see
    :class:`BatchNorm2d`)."""

    _ranks = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm3d(_BatchNorm):
    """Batch normalisation over ``(N, C, D, H, W)`` inputs (see :class:`BatchNorm2d`)."""

    _ranks = (5,)
    _layout = "(N, C, D, H, W)"


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` axes
    (:func:`xpnet.functional.layer_norm`), as ``torch.nn.LayerNorm``: an element-wise
    ``weight`` (ones) and ``bias`` (zeros) when ``elementwise_affine``."""

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        given = (
            (normalized_shape,)
            if integer(normalized_shape) is not None
            else tuple(normalized_shape)  # type: ignore[arg-type]
        )
        shape = tuple(_positive_int("normalized_shape", n) for n in given)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        dtype = _check_dtype(dtype)
        self.register_parameter(
            "weight",
            init.constant(shape, 1.0, dtype=dtype, device=device) if elementwise_affine else None,
        )
        self.register_parameter(
            "bias",
            init.zeros(shape, dtype=dtype, device=device) if elementwise_affine and bias else None,
        )

    def forward(self, x: Any) -> Any:
        return F.layer_norm(
            x, self.normalized_shape, self._parameters["weight"], self._parameters["bias"], self.eps
        )

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class GroupNorm(Module):
    """Group normalisation (:func:`xpnet.functional.group_norm`), as
    ``torch.nn.GroupNorm``: per-channel ``weight`` (ones) and ``bias`` (zeros) when
    ``affine``."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        self.num_groups = _positive_int("num_groups", num_groups)
        self.num_channels = _positive_int("num_channels", num_channels)
        if num_channels % num_groups:
            raise ValueError(
                f"num_groups: the {num_channels} channels must divide into {num_groups} groups"
            )
        self.eps, self.affine = eps, affine
        dtype = _check_dtype(dtype)
        shape = (num_channels,)
        self.register_parameter(
            "weight", init.constant(shape, 1.0, dtype=dtype, device=device) if affine else None
        )
        self.register_parameter(
            "bias", init.zeros(shape, dtype=dtype, device=device) if affine else None
        )

    def forward(self, x: Any) -> Any:
        return F.group_norm(
            x, self.num_groups, self._parameters["weight"], self._parameters["bias"], self.eps
        )

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _InstanceNorm(_BatchNorm):
    """Instance normalisation (:func:`xpnet.functional.instance_norm`), as torch's
    ``InstanceNormNd``: no affine map and no running statistics by default. With
    ``track_running_stats`` it keeps them as torch does (each instance's mean and unbiased
    variance, averaged over the batch, folded in with ``momentum``) and uses them in
    inference mode."""

    _unbatched: int = 3

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: Any = None,
        dtype: str | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, x: Any) -> Any:
        if x.ndim not in self._ranks or x.shape[1] != self.num_features:
            layout = self._layout.replace("C", str(self.num_features))
            raise ValueError(f"input: expected a {layout} array, got shape {tuple(x.shape)}")
        use_input = self.training or not self.track_running_stats
        if self._updates_statistics():
            self._update_instance_statistics(x)
        return F.instance_norm(
            x,
            self._buffers["running_mean"],
            self._buffers["running_var"],
            self._parameters["weight"],
            self._parameters["bias"],
            use_input_stats=use_input,
            eps=self.eps,
        )

    def _update_instance_statistics(self, x: Any) -> None:
        value = primal(x)  # statistics are state: computed on the values, no gradient
        xp = array_api_compat.array_namespace(value)
        axes = tuple(range(2, value.ndim))
        count = 1
        for n in value.shape[2:]:
            count *= int(n)
        mean = xp.mean(value, axis=axes)
        var = xp.var(value, axis=axes, correction=1.0) if count > 1 else xp.zeros_like(mean)
        # As torch: momentum=None means 0 here (no cumulative average), and instance
        # norm never counts batches in num_batches_tracked.
        momentum = 0.0 if self.momentum is None else self.momentum
        new_mean = (1.0 - momentum) * self._buffers["running_mean"] + momentum * xp.mean(
            mean, axis=0
        )
        new_var = (1.0 - momentum) * self._buffers["running_var"] + momentum * xp.mean(var, axis=0)
        self._buffers["running_mean"] = new_mean
        self._buffers["running_var"] = new_var


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation over ``(N, C, L)`` inputs."""

    _ranks = (3,)
    _layout = "(N, C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation over ``(N, C, H, W)`` inputs."""

    _ranks = (4,)
    _layout = "(N, C, H, W)"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation over ``(N, C, D, H, W)`` inputs."""

    _ranks = (5,)
    _layout = "(N, C, D, H, W)"
