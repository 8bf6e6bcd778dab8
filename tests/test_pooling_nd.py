"""Pooling of 1 and 3 spatial axes and adaptive pooling of every rank: forward and indices
against plain loops, gradients against the loops, finite differences and torch."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import assert_close, check_vjp_finite_differences, random_cotangent, torch_vjp
from reference_pooling import (
    adaptive_pool_nd_loops,
    avg_pool_nd_loops,
    max_pool_grad_loops,
    max_pool_nd_loops,
)


def _tuple(value, rank):
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _input(shape, seed=0):
    x = np.random.default_rng(seed).normal(size=shape)
    # Ties inside windows: torch's first-maximum rule must pick the same element.
    x[..., 1] = x[..., 0]
    return x


MAX_CASES = [
    ((2, 3, 11), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}),
    ((3, 10), {"kernel_size": (2,)}),  # unbatched
    ((2, 2, 6, 7, 5), {"kernel_size": (3, 2, 3), "stride": (2, 1, 2), "padding": 1,
                       "ceil_mode": True}),
    ((2, 2, 4, 4, 4), {"kernel_size": 2}),  # tiling windows
    ((3, 7, 6, 5), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": (2, 1, 1)}),
]  # fmt: skip

AVG_CASES = [
    ((2, 3, 11), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                  "count_include_pad": False}),
    ((3, 9), {"kernel_size": 4, "stride": 3, "padding": 2}),
    ((2, 2, 6, 7, 5), {"kernel_size": (3, 2, 3), "stride": (2, 1, 2), "padding": 1,
                       "ceil_mode": True, "count_include_pad": False}),
    ((2, 2, 6, 7, 5), {"kernel_size": (3, 2, 3), "stride": (2, 1, 2), "padding": 1,
                       "ceil_mode": True}),
    ((3, 4, 5, 4), {"kernel_size": 2, "divisor_override": 3}),
]  # fmt: skip


def _batched(x, rank):
    return x if x.ndim == rank + 2 else x[None]


def _unbatched_like(value, x, rank):
    return value if x.ndim == rank + 2 else value[0]


@pytest.mark.parametrize(("shape", "kwargs"), MAX_CASES)
def test_max_pool_matches_loops_and_torch(backend, shape, kwargs) -> None:
    torch = pytest.importorskip("torch")
    rank = len(shape) - 1 if len(shape) in (2, 4) else len(shape) - 2
    x = _input(shape)
    op, torch_op = getattr(F, f"max_pool{rank}d"), getattr(torch.nn.functional, f"max_pool{rank}d")
    xb = backend.asarray(x)
    (y, indices), pullback = F.vjp(op, xb, return_indices=True, **kwargs)
    backend.check_like(y, xb)
    window = (
        _tuple(kwargs["kernel_size"], rank),
        _tuple(kwargs.get("stride", kwargs["kernel_size"]), rank),
        _tuple(kwargs.get("padding", 0), rank),
        _tuple(kwargs.get("dilation", 1), rank),
        kwargs.get("ceil_mode", False),
    )
    want, want_indices = max_pool_nd_loops(_batched(x, rank), *window)
    assert_close(y, _unbatched_like(want, x, rank), rtol=0, atol=0)
    assert str(indices.dtype).endswith("int64")
    np.testing.assert_array_equal(xpnet.to_numpy(indices), _unbatched_like(want_indices, x, rank))
    dy = random_cotangent(tuple(y.shape))
    (dx,) = pullback(backend.asarray(dy))
    backend.check_like(dx, xb)
    expected = max_pool_grad_loops(_batched(x, rank).shape, want_indices, _batched(dy, rank))
    assert_close(dx, _unbatched_like(expected, x, rank))
    want_y, (want_dx,) = torch_vjp(torch_op, [x], dy, wrt=(0,), kwargs=kwargs)
    assert_close(y, want_y, rtol=0, atol=0)
    assert_close(dx, want_dx)
    # Without indices (the forward-only path where nothing is recorded) the values agree.
    assert_close(op(xb, **kwargs), want_y, rtol=0, atol=0)


@pytest.mark.parametrize(("shape", "kwargs"), AVG_CASES)
def test_avg_pool_matches_loops_and_torch(backend, shape, kwargs) -> None:
    torch = pytest.importorskip("torch")
    rank = len(shape) - 1 if len(shape) in (2, 4) else len(shape) - 2
    x = _input(shape, seed=1)
    op, torch_op = getattr(F, f"avg_pool{rank}d"), getattr(torch.nn.functional, f"avg_pool{rank}d")
    xb = backend.asarray(x)
    y, pullback = F.vjp(op, xb, **kwargs)
    backend.check_like(y, xb)
    want = avg_pool_nd_loops(
        _batched(x, rank),
        _tuple(kwargs["kernel_size"], rank),
        _tuple(kwargs.get("stride", kwargs["kernel_size"]), rank),
        _tuple(kwargs.get("padding", 0), rank),
        kwargs.get("ceil_mode", False),
        kwargs.get("count_include_pad", True),
        kwargs.get("divisor_override"),
    )
    assert_close(y, _unbatched_like(want, x, rank))
    dy = random_cotangent(tuple(y.shape))
    (dx,) = pullback(backend.asarray(dy))
    backend.check_like(dx, xb)
    want_y, (want_dx,) = torch_vjp(torch_op, [x], dy, wrt=(0,), kwargs=kwargs)
    assert_close(y, want_y)
    assert_close(dx, want_dx)
    assert_close(op(xb, **kwargs), want_y)


ADAPTIVE_CASES = [
    ((2, 3, 11), 4),
    ((3, 7), (3,)),  # unbatched
    ((2, 3, 7, 9), (3, None)),
    ((2, 2, 5, 7, 6), (2, 3, 4)),
    ((2, 2, 4, 4, 4), 1),  # global
    ((2, 2, 3, 5, 4), (4, 2, 5)),  # more outputs than inputs on some axes: overlapping bins
]


@pytest.mark.parametrize("reduce", ["avg", "max"])
@pytest.mark.parametrize(("shape", "output_size"), ADAPTIVE_CASES)
def test_adaptive_pool_matches_loops_and_torch(backend, shape, output_size, reduce) -> None:
    torch = pytest.importorskip("torch")
    rank = 1 if len(shape) == 2 else len(shape) - 2
    x = _input(shape, seed=2)
    name = f"adaptive_{reduce}_pool{rank}d"
    op, torch_op = getattr(F, name), getattr(torch.nn.functional, name)
    xb = backend.asarray(x)
    kwargs = {"output_size": output_size} | ({"return_indices": True} if reduce == "max" else {})
    output, pullback = F.vjp(op, xb, **kwargs)
    y = output[0] if reduce == "max" else output
    backend.check_like(y, xb)
    sizes = _tuple(output_size, rank)
    resolved = tuple(n if o is None else o for o, n in zip(sizes, shape[-rank:], strict=True))
    want, want_indices = adaptive_pool_nd_loops(_batched(x, rank), resolved, reduce)
    assert_close(y, _unbatched_like(want, x, rank))
    if reduce == "max":
        np.testing.assert_array_equal(
            xpnet.to_numpy(output[1]), _unbatched_like(want_indices, x, rank)
        )
    dy = random_cotangent(tuple(y.shape))
    (dx,) = pullback(backend.asarray(dy))
    backend.check_like(dx, xb)
    if reduce == "max":
        expected = max_pool_grad_loops(_batched(x, rank).shape, want_indices, _batched(dy, rank))
        assert_close(dx, _unbatched_like(expected, x, rank))
    torch_kwargs = {"output_size": output_size}
    want_y, (want_dx,) = torch_vjp(torch_op, [x], dy, wrt=(0,), kwargs=torch_kwargs)
    assert_close(y, want_y)
    assert_close(dx, want_dx)


@pytest.mark.parametrize(
    ("op", "kwargs", "shape"),
    [
        ("max_pool3d", {"kernel_size": 2, "stride": 1, "padding": 1}, (1, 2, 3, 3, 3)),
        ("avg_pool3d", {"kernel_size": (2, 3, 2), "stride": 2, "padding": 1}, (1, 2, 4, 5, 3)),
        ("avg_pool1d", {"kernel_size": 3, "stride": 2}, (2, 2, 7)),
        ("adaptive_avg_pool3d", {"output_size": (2, 3, 2)}, (1, 2, 3, 5, 4)),
        ("adaptive_max_pool2d", {"output_size": (2, 3)}, (1, 2, 5, 4)),
    ],
)
def test_pullbacks_agree_with_finite_differences(backend, op, kwargs, shape) -> None:
    x = np.random.default_rng(4).normal(size=shape)  # no ties: max is differentiable there
    check_vjp_finite_differences(backend, getattr(F, op), [x], kwargs, wrt=(0,))


def test_max_pool3d_nan_and_all_minus_inf_windows(backend) -> None:
    # A NaN makes its window NaN; a window whose inputs are all -inf picks its first input
    # element, never the padding (same values) or a later depth.
    x = np.full((1, 1, 3, 2, 2), -np.inf)
    x[0, 0, 2, 1, 1] = np.nan
    y, indices = F.max_pool3d(backend.asarray(x), 2, stride=1, padding=1, return_indices=True)
    y, indices = xpnet.to_numpy(y), xpnet.to_numpy(indices)
    assert np.isnan(y[0, 0, 2:, 1:, 1:]).all() and np.isneginf(y[0, 0, :2]).all()
    assert indices[0, 0, 0, 0, 0] == 0  # the first input element of the corner window
    assert indices[0, 0, 1, 1, 1] == 0  # window over depths 0-1: its first element
    assert indices[0, 0, 3, 2, 2] == 2 * 4 + 3  # the NaN


def test_errors_name_the_argument(backend) -> None:
    x1 = backend.asarray(np.ones((2, 3, 8)))
    x3 = backend.asarray(np.ones((1, 2, 4, 4, 4)))
    with pytest.raises(ValueError, match=r"input: expected a 2-D or 3-D array \(N, C, L\)"):
        F.max_pool1d(backend.asarray(np.ones((2, 3, 4, 4))), 2)
    with pytest.raises(TypeError, match=r"kernel_size: expected an int or a 1-tuple of ints"):
        F.avg_pool1d(x1, (2, 2))
    with pytest.raises(ValueError, match=r"padding: expected at most half of kernel_size"):
        F.max_pool3d(x3, 2, padding=(2, 0, 0))
    with pytest.raises(TypeError, match=r"stride: expected an int or 3 ints"):
        F.avg_pool3d(x3, 2, stride=(1, 1))
    with pytest.raises(ValueError, match=r"kernel_size: window of extent 5 .* larger than"):
        F.max_pool3d(x3, (5, 1, 1))
    with pytest.raises(ValueError, match=r"divisor_override: expected a non-zero int"):
        F.avg_pool3d(x3, 2, divisor_override=0)
    with pytest.raises(TypeError, match=r"output_size: expected an int or 3 of non-negative"):
        F.adaptive_avg_pool3d(x3, (2, 2))
    with pytest.raises(ValueError, match=r"output_size: expected positive sizes for max"):
        F.adaptive_max_pool1d(x1, 0)
    with pytest.raises(ValueError, match=r"input: expected a 4-D or 5-D array"):
        F.adaptive_max_pool3d(x1, 2)
