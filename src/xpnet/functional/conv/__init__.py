"""Convolutions of 1, 2 and 3 spatial axes and their transposes, from one implementation.

:mod:`._geometry` checks the arguments of any rank; :mod:`._passes` computes every rank
through the 2-D strategies; :mod:`._plan` chooses a 2-D strategy per device and shape
(forced with :func:`xpnet.config.conv_strategy`); each strategy is one module with
``forward``, ``input_grad`` and ``weight_grad``:

* :mod:`._flat` (stride 1: windows are shifts of the flattened image) and :mod:`._strided`
  (2-D strided slices), both through the column GEMM of :mod:`._gemm`;
* :mod:`._depthwise` (one input channel per group: multiply-accumulate pullbacks);
* :mod:`._gather` (windows by one gather with a cached index: the fewest operations, for
  GPUs).

A transposed convolution is the input gradient of the convolution it transposes, and its
own pullback is that convolution's forward (for its input) and weight gradient (for its
weight): the same three passes, used the other way round.

Chunking is not a strategy: each one runs its batch in chunks that fit the workspace budget
(:mod:`xpnet.config`) and the device's chunk size.

Where a backend has a convolution of its own (PyTorch), :mod:`._native` calls it instead,
for every rank and both directions; :func:`xpnet.config.native_kernels` switches it off.
"""

from __future__ import annotations

from typing import Any

from .._autodiff import Pullback, defvjp, primitive
from .._windows import pad_axis
from ._geometry import ConvGeometry, check_conv, check_conv_transpose
from ._native import native_pass
from ._passes import ConvPass, add_channel_bias, bias_grad, make_pass

__all__ = [
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
]

_ALL = frozenset({"input", "weight", "bias"})


def _batched(geometry: ConvGeometry, a: Any) -> Any:
    """``a`` with a batch axis (an unbatched ``(C, ...)`` array becomes ``(1, C, ...)``)."""
    return geometry.xp.expand_dims(a, axis=0) if geometry.unbatched else a


def _unbatched(geometry: ConvGeometry, a: Any) -> Any:
    return a[0, ...] if geometry.unbatched else a


def _passes(geometry: ConvGeometry) -> ConvPass:
    """The backend's own kernels where it has them (:mod:`._native`), else the standard
    passes."""
    return native_pass(geometry) or make_pass(geometry)


# ------------------------------------------------------------------------ convolution


def _conv(
    rank: int, input: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
    groups: Any, keep: bool,
) -> tuple[ConvGeometry, ConvPass, Any, Any]:  # fmt: skip
    geometry = check_conv(rank, input, weight, bias, stride, padding, dilation, groups)
    passes = _passes(geometry)
    y, saved = passes.forward_biased(_batched(geometry, input), weight, bias, keep)
    return geometry, passes, _unbatched(geometry, y), saved


def _conv_rule(rank: int) -> Any:
    def rule(
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        *,
        needs: frozenset[str] = _ALL,
    ) -> tuple[Any, Pullback]:
        geometry, passes, y, saved = _conv(
            rank, input, weight, bias, stride, padding, dilation, groups, "weight" in needs
        )

        def pullback(dy: Any) -> tuple[Any, Any, Any]:
            wanted = ("input" in needs, "weight" in needs, bias is not None and "bias" in needs)
            dx, dweight, dbias = passes.gradients(
                _batched(geometry, input), weight, _batched(geometry, dy), saved, wanted
            )
            return (None if dx is None else _unbatched(geometry, dx)), dweight, dbias

        return y, pullback

    return rule


@primitive
def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
) -> Any:
    """1-D convolution (cross-correlation), as ``torch.nn.functional.conv1d``.

    Computed as a 2-D convolution over a height of one, on the same path.

    Parameters
    ----------
    input : array
        ``(N, C, L)``, or ``(C, L)`` unbatched; floating point.
    weight : array
        ``(out_channels, C / groups, k)``, same dtype as ``input``.
    bias : array, optional
        ``(out_channels,)``.
    stride, dilation : int or (int,), default 1
        Step between windows and spacing between kernel taps; positive.
    padding : int, (int,), 'valid' or 'same', default 0
        Zeros added at each end (``'same'``: stride 1 only, an odd total puts the extra
        zero at the end).
    groups : int, default 1
        Split channels into this many independent convolutions.

    Returns
    -------
    array
        ``(N, out_channels, OL)`` with ``OL = (L + 2 * padding - dilation * (k - 1) - 1)
        // stride + 1``.
    """
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, False)[2]


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
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, False)[2]


@primitive
def conv3d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int, int] = 1,
    padding: int | tuple[int, int, int] | str = 0,
    dilation: int | tuple[int, int, int] = 1,
    groups: int = 1,
) -> Any:
    """3-D convolution (cross-correlation), as ``torch.nn.functional.conv3d``.

    Computed as one 2-D convolution whose channels are the input's depth slabs beside its
    channels (see :mod:`xpnet.functional.conv._passes`), on the 2-D path.

    Parameters
    ----------
    input : array
        ``(N, C, D, H, W)``, or ``(C, D, H, W)`` unbatched; floating point.
    weight : array
        ``(out_channels, C / groups, kD, kH, kW)``, same dtype as ``input``.
    bias : array, optional
        ``(out_channels,)``.
    stride, dilation : int or (int, int, int), default 1
        Per axis (depth, height, width); positive.
    padding : int, (int, int, int), 'valid' or 'same', default 0
        Zeros added on each side of each axis (``'same'``: stride 1 only).
    groups : int, default 1
        Split channels into this many independent convolutions.

    Returns
    -------
    array
        ``(N, out_channels, OD, OH, OW)``, each size as for :func:`conv1d`.
    """
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, False)[2]


for _op, _rank in ((conv1d, 1), (conv2d, 2), (conv3d, 3)):
    defvjp(_op, "input", "weight", "bias", selective=True)(_conv_rule(_rank))


# -------------------------------------------------------------- transposed convolution


def _conv_transpose(
    rank: int, input: Any, weight: Any, bias: Any, stride: Any, padding: Any,
    output_padding: Any, groups: Any, dilation: Any,
) -> tuple[ConvGeometry, ConvPass, tuple[int, ...], Any, Any]:  # fmt: skip
    """The transposed convolution: the input gradient of the convolution it transposes,
    for a cotangent equal to ``input`` (zero-extended where ``output_padding`` adds
    positions). Returns the geometry, passes, extension, laid-out input and output."""
    geometry, extra = check_conv_transpose(
        rank, input, weight, bias, stride, padding, output_padding, groups, dilation
    )
    passes = _passes(geometry)
    x = _batched(geometry, input)
    for axis, count in enumerate(extra):
        x = pad_axis(geometry.xp, x, axis + 2, 0, count, 0.0)
    laid = passes.lay_out(x)
    y = add_channel_bias(passes.input_grad(weight, laid), bias)
    return geometry, passes, extra, laid, _unbatched(geometry, y)


def _conv_transpose_rule(rank: int) -> Any:
    def rule(
        input: Any,
        weight: Any,
        bias: Any = None,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        dilation: Any = 1,
        *,
        needs: frozenset[str] = _ALL,
    ) -> tuple[Any, Pullback]:
        geometry, passes, extra, laid, y = _conv_transpose(
            rank, input, weight, bias, stride, padding, output_padding, groups, dilation
        )

        def pullback(dy: Any) -> tuple[Any, Any, Any]:
            dy = _batched(geometry, dy)
            dx = dweight = dbias = saved = None
            if "input" in needs:
                # The transposed op's input gradient is the convolution's forward.
                dx, saved = passes.forward(dy, weight, "weight" in needs)
                if any(extra):
                    crop = tuple(slice(0, n - e) for n, e in zip(dx.shape[2:], extra, strict=True))
                    dx = dx[(slice(None), slice(None), *crop)]
                dx = _unbatched(geometry, dx)
            if "weight" in needs:
                dweight = passes.weight_grad(dy, laid, saved)
            if bias is not None and "bias" in needs:
                dbias = bias_grad(dy)
            return dx, dweight, dbias

        return y, pullback

    return rule


_TRANSPOSE_DOC = """{rank}-D transposed convolution, as torch's ``conv_transpose{rank}d``.

    The adjoint of :func:`conv{rank}d` with the same weight: each input position scatters
    its weighted kernel into the output (a "fractionally strided" convolution). Computed
    as that convolution's input gradient, on its path.

    Parameters
    ----------
    input : array
        ``(N, C, {spatial})``, or ``(C, {spatial})`` unbatched; floating point.
    weight : array
        ``(C, out_channels / groups, {kernel})``, same dtype as ``input``.
    bias : array, optional
        ``(out_channels,)``.
    stride : int or {tuple}, default 1
        The output step between consecutive input positions; positive.
    padding : int or {tuple}, default 0
        ``dilation * (k - 1) - padding`` zeros of implicit padding: removes ``padding``
        positions from each end of the full output.
    output_padding : int or {tuple}, default 0
        Positions added at the end of each axis (smaller than the stride or the dilation),
        to pick among the output sizes a strided convolution maps to one input size.
    groups : int, default 1
        Split channels into this many independent convolutions.
    dilation : int or {tuple}, default 1
        Spacing between kernel taps; positive.

    Returns
    -------
    array
        ``(N, out_channels, {out})``, each size ``(n - 1) * stride - 2 * padding +
        dilation * (k - 1) + output_padding + 1``.
"""


@primitive
def conv_transpose1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] = 0,
    output_padding: int | tuple[int] = 0,
    groups: int = 1,
    dilation: int | tuple[int] = 1,
) -> Any:
    args = (input, weight, bias, stride, padding, output_padding, groups, dilation)
    return _conv_transpose(1, *args)[4]


@primitive
def conv_transpose2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    output_padding: int | tuple[int, int] = 0,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
) -> Any:
    args = (input, weight, bias, stride, padding, output_padding, groups, dilation)
    return _conv_transpose(2, *args)[4]


@primitive
def conv_transpose3d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int, int] = 1,
    padding: int | tuple[int, int, int] = 0,
    output_padding: int | tuple[int, int, int] = 0,
    groups: int = 1,
    dilation: int | tuple[int, int, int] = 1,
) -> Any:
    args = (input, weight, bias, stride, padding, output_padding, groups, dilation)
    return _conv_transpose(3, *args)[4]


for _transpose, _rank, _spatial, _kernel, _tuple, _out in (
    (conv_transpose1d, 1, "L", "k", "(int,)", "OL"),
    (conv_transpose2d, 2, "H, W", "kH, kW", "(int, int)", "OH, OW"),
    (conv_transpose3d, 3, "D, H, W", "kD, kH, kW", "(int, int, int)", "OD, OH, OW"),
):
    _transpose.__doc__ = _TRANSPOSE_DOC.format(
        rank=_rank, spatial=_spatial, kernel=_kernel, tuple=_tuple, out=_out
    )
    defvjp(_transpose, "input", "weight", "bias", selective=True)(_conv_transpose_rule(_rank))
