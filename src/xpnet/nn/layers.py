"""Layers with ``torch.nn``'s names, arguments and defaults, built on :mod:`xpnet.functional`.

Parameters are created on the active backend (or ``device``) with ``dtype``
(``"float32"`` by default), from the seeded host generator (``xpnet.seed`` or ``rng=``),
so one seed builds the same model on every backend.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import array_api_compat

from .. import backends
from .. import functional as F
from ..random import Generator, resolve_rng
from . import init
from .module import Module, ModulePullback

__all__ = [
    "GELU",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Identity",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]


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


class Identity(_Stateless):
    """Returns its input."""

    def forward(self, x: Any) -> Any:
        return x

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        return x, lambda dy: (dy, {})


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

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        op, args, kwargs = self._call_on(x)
        y, pullback = F.vjp(op, x, *args, **kwargs)
        return y, lambda dy: (pullback(dy)[0], {})

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


class MaxPool2d(_Stateless):
    """2-D max pooling (see :func:`xpnet.functional.max_pool2d`).

    ``stride`` defaults to ``kernel_size``. With ``return_indices=True`` the layer returns
    ``(output, indices)`` as torch does (inference only).
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        kwargs = {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "ceil_mode": self.ceil_mode,
        }
        return F.max_pool2d, (self.kernel_size,), kwargs

    def forward(self, x: Any) -> Any:
        if self.return_indices:  # torch's (output, flat indices) pair
            op, args, kwargs = self._call()
            return op(x, *args, return_indices=True, **kwargs)
        return super().forward(x)

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        if self.return_indices:
            raise ValueError(
                "return_indices: a MaxPool2d that returns (output, indices) cannot be "
                "differentiated as a layer; use return_indices=False"
            )
        return super().forward_vjp(x)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={_pair_repr(self.kernel_size)}, stride={_pair_repr(self.stride)}, "
            f"padding={_pair_repr(self.padding)}"
        )


class AvgPool2d(_Stateless):
    """2-D average pooling (see :func:`xpnet.functional.avg_pool2d`)."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        kwargs = {
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
            "divisor_override": self.divisor_override,
        }
        return F.avg_pool2d, (self.kernel_size,), kwargs

    def extra_repr(self) -> str:
        return (
            f"kernel_size={_pair_repr(self.kernel_size)}, stride={_pair_repr(self.stride)}, "
            f"padding={_pair_repr(self.padding)}"
        )


class AdaptiveAvgPool2d(_Stateless):
    """Average-pool to a fixed output size."""

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        self.output_size = output_size

    def _call(self) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        return F.adaptive_avg_pool2d, (self.output_size,), {}

    def extra_repr(self) -> str:
        return f"output_size={_pair_repr(self.output_size)}"


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

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        y, pullback = F.vjp(F.dropout, x, self.p, self.training, rng=self.rng)
        return y, lambda dy: (pullback(dy)[0], {})

    def extra_repr(self) -> str:
        return f"p={self.p}"


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


class Conv2d(_Parametrized):
    """2-D convolution layer (see :func:`xpnet.functional.conv2d`), as ``torch.nn.Conv2d``.

    Weights ``(out_channels, in_channels / groups, kH, kW)`` and bias are initialised as
    torch does: Kaiming-uniform with ``a = sqrt(5)``, bias ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output.
    kernel_size, stride, padding, dilation, groups, bias
        As in torch; ``padding`` may be ``"same"`` or ``"valid"``.
    padding_mode : {"zeros"}
        Only zero padding is supported.
    device : optional
        Device of the active backend for the parameters (its default if omitted).
    dtype : {"float32", "float64"}, optional
        Parameter dtype, ``"float32"`` by default.
    rng : numpy.random.Generator or int, optional, keyword-only
        Generator (or seed) for the initial values; xpnet's global one (:func:`xpnet.seed`)
        if omitted. The weight is drawn before the bias.

    Examples
    --------
    >>> import xpnet
    >>> from xpnet import nn
    >>> conv = nn.Conv2d(1, 6, 5, padding=2, rng=0)
    >>> conv(xpnet.asarray([[[[0.0] * 28] * 28]])).shape
    (1, 6, 28, 28)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: str | None = None,
        *,
        rng: Generator | int | None = None,
    ) -> None:
        super().__init__()
        in_channels = _positive_int("in_channels", in_channels)
        out_channels = _positive_int("out_channels", out_channels)
        groups = _positive_int("groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"both be divisible by groups ({groups})"
            )
        if padding_mode != "zeros":
            raise ValueError(f"padding_mode: only 'zeros' is supported, got {padding_mode!r}")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        _positive_int("kernel_size", kh)
        _positive_int("kernel_size", kw)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        dtype = _check_dtype(dtype)
        generator = resolve_rng(rng)
        shape = (out_channels, in_channels // groups, kh, kw)
        self.register_parameter(
            "weight",
            init.kaiming_uniform(shape, a=math.sqrt(5), rng=generator, dtype=dtype, device=device),
        )
        bound = 1.0 / math.sqrt(init.fans(shape)[0])
        self.register_parameter(
            "bias",
            init.uniform((out_channels,), -bound, bound, rng=generator, dtype=dtype, device=device)
            if bias
            else None,
        )

    def _op(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        kwargs = {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }
        return F.conv2d, kwargs

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={_pair_repr(self.stride)}"
        )
        if self.padding != 0:
            text += f", padding={_pair_repr(self.padding)}"
        if self.dilation != 1:
            text += f", dilation={_pair_repr(self.dilation)}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self._parameters["bias"] is None:
            text += ", bias=False"
        return text


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
        As for :class:`Conv2d`.
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
            self._buffers["running_mean"] = new_mean
            self._buffers["running_var"] = new_var
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

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        args, kwargs = self._arguments(x)
        (y, new_mean, new_var), pullback = F.vjp(F.batch_norm, *args, **kwargs)
        self._update(new_mean, new_var)

        def module_pullback(dy: Any) -> tuple[Any, dict[str, Any]]:
            dx, _, _, dweight, dbias = pullback(dy)
            grads = {}
            if dweight is not None:
                grads["weight"] = dweight
            if dbias is not None:
                grads["bias"] = dbias
            return dx, grads

        return y, module_pullback

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )
