"""Convolutions by a backend's own kernels, where the backend has them.

The standard passes (:mod:`._passes`) are the definition: the tests check every native pass
against them, and they run on every namespace without one (NumPy, CuPy, JAX,
array-api-strict, ...) and wherever :func:`xpnet.config.native_kernels` switches the native
ones off.

* PyTorch: ``aten.convolution`` for the forward and ``aten.convolution_backward`` for each
  gradient (oneDNN on the CPU, cuDNN on CUDA), on the same tensors, with one padding per
  axis (an asymmetric ``padding="same"`` takes the standard path).
* JAX: ``lax.conv_general_dilated`` for the forward, and its transposes (JAX's own, through
  ``jax.vjp`` of the forward, which is linear in each argument) for the gradients; inside
  ``jax.jit`` too, where XLA fuses them with the rest of the step. Depthwise, XLA's CPU
  convolution is 4-30x slower than sums over the kernel offsets of a tap times a shifted
  window, which XLA fuses into one loop each: those sums run there (:class:`JaxTapsConvPass`).
"""

from __future__ import annotations

import importlib
import itertools
from typing import Any

import array_api_compat

from ...config import get_conv_strategy, get_native_kernels
from ._geometry import ConvGeometry
from ._passes import ConvPass

__all__ = ["JaxConvPass", "JaxTapsConvPass", "TorchConvPass", "native_pass"]


def native_pass(geometry: ConvGeometry) -> ConvPass | None:
    """The native pass for this convolution's namespace and geometry, or ``None``."""
    if not get_native_kernels() or get_conv_strategy() is not None:
        return None  # switched off, or a standard strategy asked for by name
    if array_api_compat.is_torch_namespace(geometry.xp):
        if any(before != after for before, after in geometry.pads):
            return None  # aten takes one padding per axis
        return TorchConvPass(geometry)
    if array_api_compat.is_jax_namespace(geometry.xp):
        if geometry.in_channels == geometry.groups > 1:
            return JaxTapsConvPass(geometry)
        return JaxConvPass(geometry)
    return None


class TorchConvPass(ConvPass):
    """A convolution of any rank by PyTorch's own kernels (the bias too, when the op passes
    it to :meth:`forward`)."""

    def __init__(self, geometry: ConvGeometry) -> None:
        torch: Any = importlib.import_module("torch")
        self.torch = torch
        self.g = geometry
        rank = geometry.rank
        # stride, padding, dilation, transposed, output_padding, groups
        self.options = (
            list(geometry.stride),
            [before for before, _ in geometry.pads],
            list(geometry.dilation),
            False,
            [0] * rank,
            geometry.groups,
        )

    def _ghost(self, like: Any, shape: tuple[int, ...]) -> Any:
        """A tensor of ``shape`` that only lends its shape, dtype and device: the backward
        reads the input for one gradient and the weight for the other, never both."""
        return self.torch.zeros((), dtype=like.dtype, device=like.device).expand(shape)

    def forward(self, x: Any, weight: Any, keep: bool, bias: Any = None) -> tuple[Any, Any]:
        return self.torch.ops.aten.convolution(x, weight, bias, *self.options), None

    def forward_biased(self, x: Any, weight: Any, bias: Any, keep: bool) -> tuple[Any, Any]:
        # The kernel adds the bias: no separate pass over the output (LeNet's second layer
        # at batch 64: 0.62 ms with one, torch 0.40).
        return self.forward(x, weight, keep, bias=bias)

    def lay_out(self, dy: Any) -> Any:
        return dy

    def input_grad(self, weight: Any, laid: Any) -> Any:
        g = self.g
        shape = (int(laid.shape[0]), g.in_channels, *g.size)
        dx, _, _ = self.torch.ops.aten.convolution_backward(
            laid, self._ghost(laid, shape), weight, None, *self.options, [True, False, False]
        )
        return dx

    def weight_grad(self, x: Any, laid: Any, saved: Any) -> Any:
        g = self.g
        shape = (g.out_channels, g.in_channels // g.groups, *g.kernel)
        _, dweight, _ = self.torch.ops.aten.convolution_backward(
            laid, x, self._ghost(x, shape), None, *self.options, [False, True, False]
        )
        return dweight

    def gradients(
        self, x: Any, weight: Any, dy: Any, saved: Any, wanted: tuple[bool, bool, bool]
    ) -> tuple[Any, Any, Any]:
        # One call for all three, as torch's autograd makes it (LeNet-5's second layer at
        # batch 64: 1.7 ms as two calls and a sum, against 1.2).
        if not any(wanted):
            return None, None, None
        g = self.g
        bias_sizes = [g.out_channels] if wanted[2] else None
        if not wanted[0]:  # the input's values are read for dweight only: a ghost weight
            weight = self._ghost(x, (g.out_channels, g.in_channels // g.groups, *g.kernel))
        if not wanted[1]:  # and the weight's for dx only: a ghost input
            x = self._ghost(dy, (int(dy.shape[0]), g.in_channels, *g.size))
        dx, dweight, dbias = self.torch.ops.aten.convolution_backward(
            dy, x, weight, bias_sizes, *self.options, list(wanted)
        )
        return dx, dweight, dbias


class JaxConvPass(ConvPass):
    """A convolution of any rank by ``jax.lax.conv_general_dilated``, without bias."""

    def __init__(self, geometry: ConvGeometry) -> None:
        self.jax: Any = importlib.import_module("jax")
        self.g = geometry

    def _conv(self, x: Any, weight: Any) -> Any:
        g = self.g
        return self.jax.lax.conv_general_dilated(
            x,
            weight,
            window_strides=g.stride,
            padding=g.pads,
            rhs_dilation=g.dilation,
            feature_group_count=g.groups,
            precision=self.jax.lax.Precision.HIGHEST,
        )

    def forward(self, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
        return self._conv(x, weight), None

    def lay_out(self, dy: Any) -> Any:
        return dy

    def input_grad(self, weight: Any, laid: Any) -> Any:
        g, jnp = self.g, self.jax.numpy
        shape = (int(laid.shape[0]), g.in_channels, *g.size)
        # Linear in x: the transpose needs x's shape and dtype, not its values.
        _, transpose = self.jax.vjp(lambda x: self._conv(x, weight), jnp.zeros(shape, laid.dtype))
        return transpose(laid)[0]

    def weight_grad(self, x: Any, laid: Any, saved: Any) -> Any:
        g, jnp = self.g, self.jax.numpy
        shape = (g.out_channels, g.in_channels // g.groups, *g.kernel)
        _, transpose = self.jax.vjp(lambda w: self._conv(x, w), jnp.zeros(shape, x.dtype))
        return transpose(laid)[0]


class JaxTapsConvPass(JaxConvPass):
    """A convolution with one input channel per group by sums over the kernel offsets, on
    JAX.

    * forward: each offset's strided window of the zero-padded input times that offset's
      tap of every output channel of its group, summed;
    * input gradient: the same sum over the zero-stuffed, padded cotangent with the taps
      reversed (a transposed convolution), summed over each group's output channels;
    * weight gradient: per offset, the sum of the cotangent times its window.

    XLA fuses each sum into one loop over its output, where its CPU convolution runs a
    general kernel that does badly with one channel per group (measured under ``jax.jit``,
    a depthwise 3x3 convolution, batch norm and ReLU6, forward and every gradient: 64
    channels at 14 px, batch 64, 63.7 -> 15.6 ms; 96 at 16 px, batch 128, 296 -> 62 ms).
    The gradients are written out rather than left to ``jax.vjp`` of the forward: XLA
    fused that transpose's per-offset reductions with what produced the cotangent, and
    recomputed it for each offset. A single-channel input (groups 1) keeps
    :class:`JaxConvPass`: there the sums won the forward (LeNet's first layer at batch 256,
    6.8 -> 1.1 ms) and lost the step, where XLA fused a pooling's pullback into them.
    """

    def _offsets(self) -> list[tuple[int, ...]]:
        return list(itertools.product(*(range(size) for size in self.g.kernel)))

    def _windows(self, x: Any) -> list[Any]:
        """Per offset, the strided window of the padded input: ``(N, G, *out_size)``."""
        g, jnp = self.g, self.jax.numpy
        padded = jnp.pad(x, ((0, 0), (0, 0), *g.pads))
        windows = []
        for offset in self._offsets():
            spans = [
                slice(i * d, i * d + s * (n - 1) + 1, s)
                for i, d, s, n in zip(offset, g.dilation, g.stride, g.out_size, strict=True)
            ]
            windows.append(padded[(slice(None), slice(None), *spans)])
        return windows

    def _tap_sum(self, windows: list[Any], weight: Any) -> Any:
        """``sum_k windows[k] * tap_k``: per offset ``k``, a window ``(N, G, 1 or m, ...)``
        times that offset's taps of each group's ``m`` output channels."""
        g, jnp = self.g, self.jax.numpy
        taps = jnp.reshape(weight, (g.groups, g.out_channels // g.groups, -1))
        total: Any = None
        for k, window in enumerate(windows):
            term = window * jnp.reshape(taps[:, :, k], (1, *taps.shape[:2], *(1,) * g.rank))
            total = term if total is None else total + term
        return total

    def _conv(self, x: Any, weight: Any) -> Any:
        g = self.g
        total = self._tap_sum([w[:, :, None, ...] for w in self._windows(x)], weight)
        return self.jax.numpy.reshape(total, (int(x.shape[0]), g.out_channels, *g.out_size))

    def input_grad(self, weight: Any, laid: Any) -> Any:
        g, jax = self.g, self.jax
        jnp = jax.numpy
        n, groups, multiplier = int(laid.shape[0]), g.groups, g.out_channels // g.groups
        padded_size = tuple(size + a + b for size, (a, b) in zip(g.size, g.pads, strict=True))
        reach = tuple(d * (k - 1) for d, k in zip(g.dilation, g.kernel, strict=True))
        # The cotangent zero-stuffed to the stride and padded so that padded-input position
        # q gathers offset k's gradient from q + reach - k * dilation: a plain window.
        config = [(0, 0, 0), (0, 0, 0), (0, 0, 0)] + [
            (r, p - s * (out - 1) - 1, s - 1)
            for r, p, s, out in zip(reach, padded_size, g.stride, g.out_size, strict=True)
        ]
        spread = jax.lax.pad(
            jnp.reshape(laid, (n, groups, multiplier, *g.out_size)),
            jnp.zeros((), laid.dtype),
            config,
        )
        windows = []
        for offset in self._offsets():
            starts = [r - i * d for r, i, d in zip(reach, offset, g.dilation, strict=True)]
            spans = [slice(a, a + p) for a, p in zip(starts, padded_size, strict=True)]
            windows.append(spread[(slice(None), slice(None), slice(None), *spans)])
        total = self._tap_sum(windows, weight)
        summed = jnp.sum(total, axis=2) if multiplier > 1 else total[:, :, 0, ...]
        crop = tuple(slice(a, a + size) for (a, _), size in zip(g.pads, g.size, strict=True))
        return summed[(slice(None), slice(None), *crop)]

    def weight_grad(self, x: Any, laid: Any, saved: Any) -> Any:
        g, jax = self.g, self.jax
        jnp = jax.numpy
        n, groups, multiplier = int(x.shape[0]), g.groups, g.out_channels // g.groups
        # Materialised once: XLA would otherwise fuse what produced the cotangent (a ReLU's
        # mask over this convolution's output, say) into every offset's reduction.
        dy = jax.lax.optimization_barrier(jnp.reshape(laid, (n, groups, multiplier, -1)))
        axes = (0, 3)  # the batch and the positions, per group and output channel
        parts = [
            jnp.sum(dy * jnp.reshape(window, (n, groups, 1, -1)), axis=axes)
            for window in self._windows(x)
        ]  # one fused multiply-reduce each: a contraction of the stacked windows ran 3-8x slower
        return jnp.reshape(jnp.stack(parts, axis=-1), (g.out_channels, 1, *g.kernel))
