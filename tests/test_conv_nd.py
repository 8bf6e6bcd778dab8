"""conv1d/conv3d and the transposed convolutions of every rank: forward against plain loops,
every gradient against torch autograd and finite differences, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet.functional as F
from helpers import (
    assert_close,
    check_vjp_finite_differences,
    random_cotangent,
    tolerance,
    torch_vjp,
)
from reference_conv import conv_nd_loops, conv_transpose_nd_loops
from xpnet import config

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TRANSPOSED = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}

CONV_CASES = [
    # (x shape, w shape, bias, kwargs)
    ((2, 4, 9), (6, 2, 3), True, {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
    ((4, 7), (3, 4, 2), True, {"padding": "same"}),  # unbatched, odd total padding
    ((2, 3, 8), (4, 3, 3), False, {"stride": (3,), "padding": (2,), "dilation": (1,)}),
    ((2, 4, 5, 4, 6), (6, 2, 3, 2, 3), True,
     {"stride": (2, 1, 2), "padding": (1, 0, 2), "dilation": (2, 1, 1), "groups": 2}),
    ((3, 4, 5, 4), (2, 3, 1, 3, 3), False, {"padding": "same"}),  # unbatched
    ((1, 3, 5, 5, 5), (3, 1, 3, 3, 3), True, {"stride": 2, "padding": 1, "groups": 3}),
    ((2, 2, 4, 3, 4), (3, 2, 2, 2, 2), True, {"padding": "valid"}),
]  # fmt: skip

TRANSPOSE_CASES = [
    ((2, 4, 5), (4, 3, 3), True, {"stride": 2, "padding": 1, "output_padding": 1}),
    ((4, 6), (4, 2, 2), False, {"stride": (3,), "groups": 2}),  # unbatched
    ((2, 4, 5, 6), (4, 3, 2, 2), True, {"stride": 2}),  # U-Net's up-sampling
    ((2, 4, 5, 6), (4, 2, 3, 3), True,
     {"stride": (2, 3), "padding": (1, 2), "output_padding": (1, 0), "groups": 2,
      "dilation": (1, 2)}),
    # An output_padding as large as the stride (allowed below the dilation).
    ((2, 3, 4, 5), (3, 2, 3, 3), False, {"padding": 1, "output_padding": 1, "dilation": 2}),
    ((3, 4, 4), (3, 2, 3, 3), True, {"stride": 2, "padding": 1, "output_padding": 1}),
    ((2, 4, 3, 4, 5), (4, 3, 3, 2, 3), True,
     {"stride": (2, 1, 2), "padding": (1, 0, 1), "output_padding": (1, 0, 0)}),
    ((4, 3, 4, 5), (4, 1, 3, 3, 3), True, {"stride": 2, "groups": 4, "dilation": (1, 2, 1)}),
]  # fmt: skip


def _tuple(value, rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _conv_loops(x, w, b, kwargs):
    rank = w.ndim - 2
    batched = x.ndim == rank + 2
    xb = x if batched else x[None]
    stride, dilation = (
        _tuple(kwargs.get("stride", 1), rank),
        _tuple(kwargs.get("dilation", 1), rank),
    )
    padding = kwargs.get("padding", 0)
    if padding == "same":
        pads = tuple(
            (d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
            for k, d in zip(w.shape[2:], dilation, strict=True)
        )
    elif padding == "valid":
        pads = ((0, 0),) * rank
    else:
        pads = tuple((p, p) for p in _tuple(padding, rank))
    y = conv_nd_loops(xb, w, b, stride, pads, dilation, kwargs.get("groups", 1))
    return y if batched else y[0]


def _transpose_loops(x, w, b, kwargs):
    rank = w.ndim - 2
    batched = x.ndim == rank + 2
    y = conv_transpose_nd_loops(
        x if batched else x[None],
        w,
        b,
        _tuple(kwargs.get("stride", 1), rank),
        _tuple(kwargs.get("padding", 0), rank),
        _tuple(kwargs.get("output_padding", 0), rank),
        _tuple(kwargs.get("dilation", 1), rank),
        kwargs.get("groups", 1),
    )
    return y if batched else y[0]


def _arrays(x_shape, w_shape, with_bias, seed=0):
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    out_channels = w_shape[0] if len(x_shape) else 0
    return x, w, (rng.normal(size=out_channels) if with_bias else None)


def _check_against_references(backend, op, torch_op, loops, x, w, b, kwargs) -> None:
    args = [x, w] + ([b] if b is not None else [])
    arrays = [backend.asarray(a) for a in args]
    y, pullback = F.vjp(op, *arrays, **kwargs)
    backend.check_like(y, arrays[0])
    assert_close(y, loops(x, w, b, kwargs))
    dy = random_cotangent(tuple(y.shape), seed=3)
    grads = pullback(backend.asarray(dy))
    want_y, expected = torch_vjp(torch_op, args, dy, wrt=range(len(args)), kwargs=kwargs)
    assert_close(y, want_y)
    for grad, want, array in zip(grads, expected, arrays, strict=True):
        backend.check_like(grad, array)
        assert_close(grad, want)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize(("x_shape", "w_shape", "with_bias", "kwargs"), CONV_CASES)
def test_conv_matches_loops_and_torch(backend, x_shape, w_shape, with_bias, kwargs) -> None:
    torch = pytest.importorskip("torch")
    rank = len(w_shape) - 2
    x, w, b = _arrays(x_shape, w_shape, with_bias)
    torch_op = getattr(torch.nn.functional, f"conv{rank}d")
    _check_against_references(backend, CONV[rank], torch_op, _conv_loops, x, w, b, kwargs)


@pytest.mark.parametrize(("x_shape", "w_shape", "with_bias", "kwargs"), TRANSPOSE_CASES)
def test_conv_transpose_matches_loops_and_torch(
    backend, x_shape, w_shape, with_bias, kwargs
) -> None:
    torch = pytest.importorskip("torch")
    rank = len(w_shape) - 2
    x, w, b = _arrays(x_shape, w_shape, with_bias)
    # The bias has one value per output channel: the weight's second axis times groups.
    if b is not None:
        b = np.random.default_rng(1).normal(size=w_shape[1] * kwargs.get("groups", 1))
    torch_op = getattr(torch.nn.functional, f"conv_transpose{rank}d")
    _check_against_references(
        backend, TRANSPOSED[rank], torch_op, _transpose_loops, x, w, b, kwargs
    )


@pytest.mark.parametrize("strategy", ["flat", "strided", "gather"])
def test_every_strategy_computes_conv3d_and_the_transposes(backend, strategy) -> None:
    torch = pytest.importorskip("torch")
    x, w, b = _arrays((2, 4, 4, 5, 6), (4, 2, 2, 3, 3), True, seed=5)
    kwargs = {"stride": (1, 2, 1), "padding": 1, "groups": 2}
    xt, wt, _ = _arrays((2, 4, 5, 6), (4, 3, 3, 3), False, seed=6)
    bt = np.random.default_rng(7).normal(size=3)
    transposed = {"stride": 2, "padding": 1, "output_padding": 1}
    with config.conv_strategy(strategy):
        _check_against_references(
            backend, F.conv3d, torch.nn.functional.conv3d, _conv_loops, x, w, b, kwargs
        )
        _check_against_references(
            backend, F.conv_transpose2d, torch.nn.functional.conv_transpose2d,
            _transpose_loops, xt, wt, bt, transposed,
        )  # fmt: skip


@pytest.mark.parametrize("op", ["conv1d", "conv3d", "conv_transpose2d", "conv_transpose3d"])
def test_pullbacks_agree_with_finite_differences(backend, op) -> None:
    shapes = {
        "conv1d": ((2, 4, 7), (2, 2, 3), {"stride": 2, "padding": 1, "groups": 2}),
        "conv3d": ((1, 2, 4, 3, 4), (2, 2, 2, 2, 2), {"stride": (2, 1, 1), "padding": 1}),
        "conv_transpose2d": ((1, 2, 3, 4), (2, 3, 3, 2), {"stride": 2, "output_padding": 1}),
        "conv_transpose3d": ((1, 2, 2, 3, 2), (2, 2, 2, 2, 2), {"stride": (1, 2, 2)}),
    }
    x_shape, w_shape, kwargs = shapes[op]
    x, w, _ = _arrays(x_shape, w_shape, False, seed=8)
    channels = w_shape[0] if op.startswith("conv1") or op == "conv3d" else w_shape[1]
    b = np.random.default_rng(9).normal(size=channels)
    check_vjp_finite_differences(backend, getattr(F, op), [x, w, b], kwargs, wrt=(0, 1, 2))


def test_float32_stays_float32(backend) -> None:
    torch = pytest.importorskip("torch")
    x, w, b = _arrays((2, 3, 4, 5, 5), (2, 3, 3, 3, 3), True, seed=10)
    arrays = [backend.asarray(a, "float32") for a in (x, w, b)]
    y = F.conv3d(*arrays, padding=1)
    backend.check_like(y, arrays[0])
    want = torch.nn.functional.conv3d(*(torch.tensor(a) for a in (x, w, b)), padding=1)
    assert_close(y, want.numpy(), **tolerance("float32"))
    xt, wt, _ = _arrays((2, 3, 6), (3, 2, 3), False, seed=11)
    yt = F.conv_transpose1d(
        backend.asarray(xt, "float32"), backend.asarray(wt, "float32"), stride=2
    )
    backend.check_like(yt, arrays[0])
    want = torch.nn.functional.conv_transpose1d(torch.tensor(xt), torch.tensor(wt), stride=2)
    assert_close(yt, want.numpy(), **tolerance("float32"))


def test_errors_name_the_argument(backend) -> None:
    x1 = backend.asarray(np.ones((2, 4, 6)))
    w1 = backend.asarray(np.ones((3, 4, 3)))
    with pytest.raises(
        ValueError, match=r"input: expected a 2-D or 3-D array \(N, C, L\) or \(C, L\)"
    ):
        F.conv1d(backend.asarray(np.ones((2, 4, 6, 6))), w1)
    with pytest.raises(
        ValueError, match=r"weight: expected a 3-D array \(out_channels, in_channels / groups, k\)"
    ):
        F.conv1d(x1, backend.asarray(np.ones((3, 4, 3, 3))))
    with pytest.raises(
        TypeError, match=r"stride: expected an int or a 1-tuple of ints, got \(1, 1\)"
    ):
        F.conv1d(x1, w1, stride=(1, 1))
    with pytest.raises(ValueError, match=r"padding: expected an int, a 1-tuple, 'valid' or 'same'"):
        F.conv1d(x1, w1, padding="full")
    x3 = backend.asarray(np.ones((1, 2, 3, 4, 4)))
    with pytest.raises(TypeError, match=r"dilation: expected an int or 3 ints"):
        F.conv3d(x3, backend.asarray(np.ones((2, 2, 2, 2, 2))), dilation=(1, 1))
    with pytest.raises(
        ValueError, match=r"weight: kernel of extent 5 .* larger than the padded input \(3"
    ):
        F.conv3d(x3, backend.asarray(np.ones((2, 2, 3, 3, 3))), dilation=(2, 1, 1))
    wt = backend.asarray(np.ones((4, 2, 3, 3)))
    xt = backend.asarray(np.ones((1, 4, 5, 5)))
    with pytest.raises(
        ValueError, match=r"output_padding: expected values smaller than the stride or the dilation"
    ):
        F.conv_transpose2d(xt, wt, stride=2, output_padding=2)
    with pytest.raises(
        ValueError, match=r"weight: expects 4 input channels \(its first axis\), but input has 3"
    ):
        F.conv_transpose2d(backend.asarray(np.ones((1, 3, 5, 5))), wt)
    with pytest.raises(
        ValueError, match=r"padding: a transposed convolution takes an int or a pair, got 'same'"
    ):
        F.conv_transpose2d(xt, wt, padding="same")
    with pytest.raises(
        ValueError, match=r"bias: expected shape \(4,\) \(one value per output channel\)"
    ):
        F.conv_transpose2d(xt, wt, backend.asarray(np.ones(2)), groups=2)
    with pytest.raises(
        ValueError, match=r"input: spatial size \(5, 5\) gives an output of size \(-1, -1\)"
    ):
        F.conv_transpose2d(xt, wt, padding=4)
