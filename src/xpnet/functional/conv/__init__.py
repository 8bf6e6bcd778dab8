"""2-D convolution and its pullback, computed by one of several strategies.

:mod:`._plan` checks the arguments and chooses a strategy per device and shape (forced with
:func:`xpnet.config.conv_strategy`); each strategy is one module with ``forward``,
``input_grad`` and ``weight_grad``:

* :mod:`._flat` (stride 1: windows are shifts of the flattened image) and :mod:`._strided`
  (2-D strided slices), both through the column GEMM of :mod:`._gemm`;
* :mod:`._depthwise` (one input channel per group: multiply-accumulate pullbacks);
* :mod:`._gather` (windows by one gather with a cached index: the fewest operations, for
  GPUs).

Chunking is not a strategy: each one runs its batch in chunks that fit the workspace budget
(:mod:`xpnet.config`) and the device's chunk size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .._autodiff import Pullback, defvjp, primitive
from . import _depthwise, _flat, _gather, _gemm, _strided
from ._plan import ConvPlan, plan

__all__ = ["conv2d"]


class _Strategy(NamedTuple):
    """One way to compute a convolution: its passes over a checked plan."""

    forward: Callable[[ConvPlan, Any, Any, bool], tuple[Any, Any]]  # -> (y, saved)
    cotangent: Callable[[ConvPlan, Any], Any]  # lays dY out once for both gradients
    input_grad: Callable[[ConvPlan, Any, Any], Any]  # (plan, weight, dy)
    weight_grad: Callable[[ConvPlan, Any, Any, Any], Any]  # (plan, x, dy, saved)


def _as_is(checked: ConvPlan, dy: Any) -> Any:
    return dy


_STRATEGIES = {
    "flat": _Strategy(_gemm.forward, _as_is, _flat.input_grad, _gemm.weight_grad),
    "strided": _Strategy(_gemm.forward, _as_is, _strided.input_grad, _gemm.weight_grad),
    "depthwise": _Strategy(_gemm.forward, _as_is, _depthwise.input_grad, _depthwise.weight_grad),
    "gather": _Strategy(
        _gather.forward, _gather.cotangent, _gather.input_grad, _gather.weight_grad
    ),
}


def _with_batch_axis(checked: ConvPlan, x: Any) -> Any:
    """``x`` with a batch axis (unbatched ``(C, H, W)`` input becomes ``(1, C, H, W)``)."""
    return checked.xp.expand_dims(x, axis=0) if checked.unbatched else x


def _forward(checked: ConvPlan, x: Any, weight: Any, bias: Any, keep: bool) -> tuple[Any, Any]:
    xp = checked.xp
    strategy = _STRATEGIES[checked.strategy]
    y, saved = strategy.forward(checked, _with_batch_axis(checked, x), weight, keep)
    if bias is not None:
        y = y + xp.reshape(bias, (1, checked.out_channels, 1, 1))
    return (y[0, ...] if checked.unbatched else y), saved


@primitive
def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Any:
    """2-D convolution (cross-correlation, as in every deep-learning library).

    Parameters
    ----------
    input : array
        ``(N, C, H, W)``, or ``(C, H, W)`` for one unbatched image; floating point.
    weight : array
        ``(out_channels, C / groups, kH, kW)``, same dtype as ``input``.
    bias : array, optional
        ``(out_channels,)``.
    stride : int or (int, int), default 1
        Step between windows; positive.
    padding : int, (int, int), 'valid' or 'same', default 0
        Zeros added on each side. ``'same'`` keeps the size (stride 1 only; an odd total
        padding puts the extra row/column at the bottom/right, as torch does).
    dilation : int or (int, int), default 1
        Spacing between kernel taps; positive.
    groups : int, default 1
        Split channels into this many independent convolutions.

    Returns
    -------
    array
        ``(N, out_channels, OH, OW)`` with
        ``OH = (H + pad_top + pad_bottom - dilation * (kH - 1) - 1) // stride + 1``.

    Examples
    --------
    The edge detector of the from-scratch walkthrough:

    >>> import xpnet, xpnet.functional as F
    >>> image = xpnet.asarray([[[[1, 2, 3, 0, 1], [4, 5, 6, 1, 2], [7, 8, 9, 2, 3],
    ...                          [1, 2, 3, 4, 5], [6, 7, 8, 5, 6]]]], dtype="float32")
    >>> kernel = xpnet.asarray([[[[1, 0, -1], [1, 0, -1], [1, 0, -1]]]], dtype="float32")
    >>> xpnet.to_numpy(F.conv2d(image, kernel))[0, 0].tolist()
    [[-6.0, 12.0, 12.0], [-6.0, 8.0, 8.0], [-6.0, 6.0, 6.0]]
    """
    checked = plan(input, weight, bias, stride, padding, dilation, groups)
    return _forward(checked, input, weight, bias, keep=False)[0]


_ALL = frozenset({"input", "weight", "bias"})


@defvjp(conv2d, "input", "weight", "bias", selective=True)
def _conv2d_vjp(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    needs: frozenset[str] = _ALL,
) -> tuple[Any, Pullback]:
    checked = plan(input, weight, bias, stride, padding, dilation, groups)
    y, saved = _forward(checked, input, weight, bias, keep="weight" in needs)
    xp = checked.xp
    strategy = _STRATEGIES[checked.strategy]

    def pullback(dy: Any) -> tuple[Any, Any, Any]:
        x = _with_batch_axis(checked, input)
        dy_batched = _with_batch_axis(checked, dy)
        dx = dweight = dbias = None
        if needs & {"input", "weight"}:
            laid_out = strategy.cotangent(checked, dy_batched)
        if "input" in needs:
            dx = strategy.input_grad(checked, weight, laid_out)
            if checked.unbatched:
                dx = dx[0, ...]
        if "weight" in needs:
            dweight = strategy.weight_grad(checked, x, laid_out, saved)
            dweight = xp.reshape(dweight, tuple(weight.shape))
        if bias is not None and "bias" in needs:
            dbias = xp.sum(dy_batched, axis=(0, 2, 3))
        return dx, dweight, dbias

    return y, pullback
