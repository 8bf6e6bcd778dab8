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
  ``jax.jit`` too, where XLA fuses them with the rest of the step.
"""

from __future__ import annotations

import importlib
from typing import Any

import array_api_compat

from ...config import get_conv_strategy, get_native_kernels
from ._geometry import ConvGeometry
from ._passes import ConvPass

__all__ = ["JaxConvPass", "TorchConvPass", "native_pass"]


def native_pass(geometry: ConvGeometry) -> ConvPass | None:
    """The native pass for this convolution's namespace and geometry, or ``None``."""
    if not get_native_kernels() or get_conv_strategy() is not None:
        return None  # switched off, or a standard strategy asked for by name
    if array_api_compat.is_torch_namespace(geometry.xp):
        if any(before != after for before, after in geometry.pads):
            return None  # aten takes one padding per axis
        return TorchConvPass(geometry)
    if array_api_compat.is_jax_namespace(geometry.xp):
        return JaxConvPass(geometry)
    return None


class TorchConvPass(ConvPass):
    """A convolution of any rank by PyTorch's own kernels, without bias (added by the op)."""

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

    def forward(self, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
        return self.torch.ops.aten.convolution(x, weight, None, *self.options), None

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
