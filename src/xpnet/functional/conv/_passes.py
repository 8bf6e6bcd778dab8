"""The passes of a checked convolution of any rank, all through the 2-D strategies.

A pass computes, on batched arrays and without bias, the three products every
convolution op needs: the forward, the input gradient (which is also the forward of the
transposed convolution) and the weight gradient, with ``lay_out`` arranging a cotangent
once for both gradients.

* 2-D: the strategy :mod:`._plan` chose (its speed, launch count and workspace budget).
* 1-D: the 2-D pass over a height of one, by reshapes that copy nothing.
* 3-D: the depth taps become channels. Each of the ``kD`` depth offsets takes one strided
  slab of the input's depth; the slabs are stacked beside the channels and the output
  depths go to the batch, so one 2-D convolution with ``kD`` times the channels (the
  weight's depth taps laid beside its channels) computes the 3-D one, on the same tuned
  path and in one GEMM per chunk. Its input gradient folds the slabs back onto the depth.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import array_api_compat

from .. import _numba
from .._inplace import add_into
from .._windows import fold_taps, pad_axis
from . import _compiled, _depthwise, _flat, _gather, _gemm, _strided
from ._geometry import ConvGeometry
from ._plan import ConvPlan, plan_of

__all__ = ["Conv2dPass", "ConvPass", "add_channel_bias", "bias_grad", "make_pass"]


def add_channel_bias(y: Any, bias: Any) -> Any:
    """``y + bias`` along axis 1 (``bias`` may be ``None``), into ``y``: a new array (or a
    view of one) that nothing else holds, as every pass returns."""
    if bias is None:
        return y
    xp = array_api_compat.array_namespace(y, bias)
    return add_into(y, xp.reshape(bias, (1, int(bias.shape[0])) + (1,) * (y.ndim - 2)))


def bias_grad(dy: Any) -> Any:
    """The gradient of a per-channel bias: ``dy`` summed over every axis but axis 1."""
    xp = array_api_compat.array_namespace(dy)
    return xp.sum(dy, axis=(0, *range(2, dy.ndim)))


class _Strategy(NamedTuple):
    """One way to compute a 2-D convolution: its passes over a plan."""

    forward: Any  # (plan, x, weight, keep) -> (y, saved)
    cotangent: Any  # (plan, dy) -> dY laid out once for both gradients
    input_grad: Any  # (plan, weight, laid) -> dx
    weight_grad: Any  # (plan, x, laid, saved) -> dweight


def _as_is(plan: ConvPlan, dy: Any) -> Any:
    return dy


STRATEGIES = {
    "flat": _Strategy(_gemm.forward, _as_is, _flat.input_grad, _gemm.weight_grad),
    "strided": _Strategy(_gemm.forward, _as_is, _strided.input_grad, _gemm.weight_grad),
    "compiled": _Strategy(_gemm.forward, _as_is, _compiled.input_grad, _gemm.weight_grad),
    "compiled_direct": _Strategy(
        _compiled.direct_forward, _as_is, _compiled.input_grad, _compiled.direct_weight_grad
    ),
    "compiled_depthwise": _Strategy(
        _compiled.depthwise_forward,
        _as_is,
        _compiled.depthwise_input_grad,
        _compiled.depthwise_weight_grad,
    ),
    "depthwise": _Strategy(_gemm.forward, _as_is, _depthwise.input_grad, _depthwise.weight_grad),
    "gather": _Strategy(
        _gather.forward, _gather.cotangent, _gather.input_grad, _gather.weight_grad
    ),
}


class ConvPass:
    """The passes of one convolution (see the module docstring); all arrays batched."""

    def forward(self, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
        """``(y, saved)``: the output, and what the weight gradient may reuse (with ``keep``)."""
        raise NotImplementedError

    def forward_biased(self, x: Any, weight: Any, bias: Any, keep: bool) -> tuple[Any, Any]:
        """:meth:`forward` with ``bias`` (``(O,)`` or ``None``) added per output channel,
        into the new output; a pass whose kernel adds it in the same pass overrides this."""
        y, saved = self.forward(x, weight, keep)
        return add_channel_bias(y, bias), saved

    def lay_out(self, dy: Any) -> Any:
        """The output cotangent arranged for :meth:`input_grad` and :meth:`weight_grad`."""
        raise NotImplementedError

    def input_grad(self, weight: Any, laid: Any) -> Any:
        """The input's gradient (the transposed convolution of the cotangent)."""
        raise NotImplementedError

    def weight_grad(self, x: Any, laid: Any, saved: Any) -> Any:
        """The weight's gradient, in the weight's shape."""
        raise NotImplementedError

    def gradients(
        self, x: Any, weight: Any, dy: Any, saved: Any, wanted: tuple[bool, bool, bool]
    ) -> tuple[Any, Any, Any]:
        """``(dx, dweight, dbias)`` from the cotangent ``dy``, each only where ``wanted``
        says (input, weight, bias; ``None`` otherwise): the cotangent laid out once for
        both products. A backend whose kernel computes them in one call overrides this."""
        dx = dweight = dbias = None
        if wanted[0] or wanted[1]:
            laid = self.lay_out(dy)
            if wanted[0]:
                dx = self.input_grad(weight, laid)
            if wanted[1]:
                dweight = self.weight_grad(x, laid, saved)
        if wanted[2]:
            dbias = bias_grad(dy)
        return dx, dweight, dbias


class Conv2dPass(ConvPass):
    """A 2-D convolution by the strategy its plan chose."""

    def __init__(self, plan: ConvPlan) -> None:
        self.plan = plan
        self._strategy = STRATEGIES[plan.strategy]

    def forward(self, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
        return self._strategy.forward(self.plan, x, weight, keep)  # type: ignore[no-any-return]

    def forward_biased(self, x: Any, weight: Any, bias: Any, keep: bool) -> tuple[Any, Any]:
        if self.plan.strategy == "compiled" and bias is not None and _numba.compilable(x):
            # The product's layout copy and the bias in one compiled pass (nothing saved:
            # on a CPU the weight gradient rebuilds its columns).
            return _compiled.forward_biased(self.plan, x, weight, bias), None
        if self.plan.strategy == "compiled_direct" and _numba.compilable(x):
            return _compiled.direct_forward_biased(self.plan, x, weight, bias), None
        return super().forward_biased(x, weight, bias, keep)

    def lay_out(self, dy: Any) -> Any:
        return self._strategy.cotangent(self.plan, dy)

    def input_grad(self, weight: Any, laid: Any) -> Any:
        return self._strategy.input_grad(self.plan, weight, laid)

    def weight_grad(self, x: Any, laid: Any, saved: Any) -> Any:
        plan = self.plan
        dweight = self._strategy.weight_grad(plan, x, laid, saved)
        shape = (plan.out_channels, plan.in_channels // plan.groups, *plan.kernel)
        return plan.xp.reshape(dweight, shape)


class _Conv1dPass(ConvPass):
    """A 1-D convolution as a 2-D one over a height of one."""

    def __init__(self, inner: Conv2dPass) -> None:
        self.inner = inner

    @staticmethod
    def _lift(a: Any) -> Any:  # (N, C, L) -> (N, C, 1, L); also the weight's (O, C, k)
        return a[:, :, None, :]

    def forward(self, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
        y, saved = self.inner.forward(self._lift(x), self._lift(weight), keep)
        return y[:, :, 0, :], saved

    def lay_out(self, dy: Any) -> Any:
        return self.inner.lay_out(self._lift(dy))

    def input_grad(self, weight: Any, laid: Any) -> Any:
        return self.inner.input_grad(self._lift(weight), laid)[:, :, 0, :]

    def weight_grad(self, x: Any, laid: Any, saved: Any) -> Any:
        return self.inner.weight_grad(self._lift(x), laid, saved)[:, :, 0, :]


class _Conv3dPass(ConvPass):
    """A 3-D convolution as one 2-D convolution of the stacked depth slabs."""

    def __init__(self, geometry: ConvGeometry, inner: Conv2dPass) -> None:
        self.g = geometry
        self.inner = inner

    def _stacked(self, x: Any) -> Any:
        """``(N, C, D, H, W)`` -> ``(N * OD, G * kD * C/G, H, W)``: for each output depth,
        the ``kD`` input planes it reads, beside each group's channels."""
        g, xp = self.g, self.g.xp
        n, channels, _, height, width = (int(s) for s in x.shape)
        (before, after), od = g.pads[0], g.out_size[0]
        depth_major = pad_axis(xp, xp.permute_dims(x, (0, 2, 1, 3, 4)), 1, before, after, 0.0)
        grouped = (n, od, g.groups, channels // g.groups, height, width)
        step, span = g.stride[0], g.stride[0] * (od - 1) + 1
        slabs = [
            xp.reshape(depth_major[:, start : start + span : step, ...], grouped)
            for start in range(0, g.dilation[0] * g.kernel[0], g.dilation[0])
        ]
        stacked = xp.stack(slabs, axis=3)  # (N, OD, G, kD, C/G, H, W)
        return xp.reshape(stacked, (n * od, channels * g.kernel[0], height, width))

    def _weight(self, weight: Any) -> Any:
        """``(O, C/G, kD, kH, kW)`` -> ``(O, kD * C/G, kH, kW)``, the stacked channels' order."""
        xp, shape = self.g.xp, tuple(int(s) for s in weight.shape)
        taps = xp.permute_dims(weight, (0, 2, 1, 3, 4))
        return xp.reshape(taps, (shape[0], shape[2] * shape[1], shape[3], shape[4]))

    def forward(self, x: Any, weight: Any, keep: bool) -> tuple[Any, Any]:
        xp = self.g.xp
        stacked = self._stacked(x)
        y, saved = self.inner.forward(stacked, self._weight(weight), keep)
        n, od = int(x.shape[0]), self.g.out_size[0]
        y = xp.reshape(y, (n, od, *(int(s) for s in y.shape[1:])))
        return xp.permute_dims(y, (0, 2, 1, 3, 4)), ((stacked, saved) if keep else None)

    def lay_out(self, dy: Any) -> Any:
        xp = self.g.xp
        n, channels, od, oh, ow = (int(s) for s in dy.shape)
        by_depth = xp.reshape(xp.permute_dims(dy, (0, 2, 1, 3, 4)), (n * od, channels, oh, ow))
        return self.inner.lay_out(by_depth)

    def input_grad(self, weight: Any, laid: Any) -> Any:
        g, xp = self.g, self.g.xp
        dstacked = self.inner.input_grad(self._weight(weight), laid)
        od, kd = g.out_size[0], g.kernel[0]
        _, _, height, width = (int(s) for s in dstacked.shape)
        n = int(dstacked.shape[0]) // od
        taps = xp.reshape(dstacked, (n, od, g.groups, kd, g.in_channels // g.groups, height, width))
        (before, after), depth = g.pads[0], g.size[0]
        # Each slab's gradient goes back to the depths it was sliced from.
        slabs = [
            xp.reshape(taps[:, :, :, tap, ...], (n, od, g.in_channels, height, width))
            for tap in range(kd)
        ]
        total = fold_taps(xp, slabs, 1, depth + before + after, g.stride[0], g.dilation[0])
        return xp.permute_dims(total[:, before : before + depth, ...], (0, 2, 1, 3, 4))

    def weight_grad(self, x: Any, laid: Any, saved: Any) -> Any:
        xp = self.g.xp
        stacked, inner_saved = saved if saved is not None else (self._stacked(x), None)
        dweight = self.inner.weight_grad(stacked, laid, inner_saved)
        o, _, kh, kw = (int(s) for s in dweight.shape)
        kd = self.g.kernel[0]
        taps = xp.reshape(dweight, (o, kd, self.g.in_channels // self.g.groups, kh, kw))
        return xp.permute_dims(taps, (0, 2, 1, 3, 4))


def make_pass(geometry: ConvGeometry) -> ConvPass:
    """The passes of a checked convolution of rank 1, 2 or 3."""
    if geometry.rank == 2:
        return Conv2dPass(plan_of(geometry))
    if geometry.rank == 1:
        (before, after), size = geometry.pads[0], geometry.size[0]
        lifted = ConvGeometry(
            **{
                **geometry.__dict__,
                "kernel": (1, geometry.kernel[0]),
                "stride": (1, geometry.stride[0]),
                "dilation": (1, geometry.dilation[0]),
                "pads": ((0, 0), (before, after)),
                "size": (1, size),
                "out_size": (1, geometry.out_size[0]),
            }
        )
        return _Conv1dPass(Conv2dPass(plan_of(lifted)))
    if geometry.rank == 3:
        kd = geometry.kernel[0]
        planes = ConvGeometry(
            **{
                **geometry.__dict__,
                "batch": geometry.batch * geometry.out_size[0],
                "in_channels": geometry.in_channels * kd,
                "kernel": geometry.kernel[1:],
                "stride": geometry.stride[1:],
                "dilation": geometry.dilation[1:],
                "pads": geometry.pads[1:],
                "size": geometry.size[1:],
                "out_size": geometry.out_size[1:],
            }
        )
        return _Conv3dPass(geometry, Conv2dPass(plan_of(planes)))
    raise ValueError(f"convolutions have 1, 2 or 3 spatial axes, got {geometry.rank}")
