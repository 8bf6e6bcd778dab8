"""interpolate and pixel_shuffle/unshuffle: against entry-by-entry references, finite
differences and torch, on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import (
    assert_close,
    check_vjp_finite_differences,
    random_cotangent,
    tolerance,
    torch_vjp,
)
from reference_resize import interpolate_loops, pixel_shuffle_loops

CASES = [
    # (input shape, kwargs)
    ((2, 3, 7), {"scale_factor": 2.5, "mode": "nearest"}),
    ((2, 3, 7), {"size": 3, "mode": "nearest"}),
    ((2, 3, 7), {"size": 11, "mode": "nearest-exact"}),
    ((2, 2, 7), {"size": 4, "mode": "linear"}),
    ((2, 2, 5, 4), {"scale_factor": 2, "mode": "nearest"}),
    ((2, 2, 5, 4), {"size": (9, 3), "mode": "bilinear"}),
    ((2, 2, 5, 4), {"size": (9, 3), "mode": "bilinear", "align_corners": True}),
    ((2, 2, 5, 4), {"scale_factor": (1.7, 0.6), "mode": "bilinear"}),
    ((2, 2, 5, 4), {"scale_factor": (1.7, 0.6), "mode": "bilinear", "recompute_scale_factor": True}),
    ((1, 2, 3, 4, 3), {"scale_factor": 2, "mode": "trilinear"}),
    ((1, 2, 3, 4, 3), {"size": (2, 5, 1), "mode": "trilinear", "align_corners": True}),
    ((1, 2, 3, 4, 3), {"scale_factor": (2, 1.5, 1), "mode": "nearest"}),
]  # fmt: skip


def _reference(x, kwargs):
    sizes = x.shape[2:]
    rank = len(sizes)
    if kwargs.get("size") is not None:
        size = kwargs["size"]
        out = tuple(size) if isinstance(size, tuple) else (size,) * rank
        scales = None
    else:
        factor = kwargs["scale_factor"]
        factors = tuple(factor) if isinstance(factor, tuple) else (factor,) * rank
        out = tuple(math.floor(n * f) for n, f in zip(sizes, factors, strict=True))
        scales = None if kwargs.get("recompute_scale_factor") else factors
    mode = kwargs["mode"]
    if mode in ("linear", "bilinear", "trilinear"):
        mode = "linear"
    return interpolate_loops(x, out, mode, bool(kwargs.get("align_corners")), scales)


@pytest.mark.parametrize(("shape", "kwargs"), CASES)
def test_interpolate_matches_loops_and_torch(backend, shape, kwargs) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=shape)
    xb = backend.asarray(x)
    y, pullback = F.vjp(F.interpolate, xb, **kwargs)
    backend.check_like(y, xb)
    assert_close(y, _reference(x, kwargs))
    dy = random_cotangent(tuple(y.shape))
    (dx,) = pullback(backend.asarray(dy))
    backend.check_like(dx, xb)
    want_y, (want_dx,) = torch_vjp(
        torch.nn.functional.interpolate, [x], dy, wrt=(0,), kwargs=kwargs
    )
    assert_close(y, want_y)
    assert_close(dx, want_dx)


@pytest.mark.parametrize(("shape", "kwargs"), CASES[3::3])
def test_interpolate_float32_matches_torch(backend, shape, kwargs) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    y = F.interpolate(backend.asarray(x, "float32"), **kwargs)
    assert str(y.dtype).endswith("float32")
    want = torch.nn.functional.interpolate(torch.tensor(x), **kwargs).numpy()
    assert_close(y, want, **tolerance("float32"))


@pytest.mark.parametrize(("shape", "kwargs"), [CASES[3], CASES[7], CASES[9]])
def test_interpolate_pullback_finite_differences(backend, shape, kwargs) -> None:
    x = np.random.default_rng(2).normal(size=shape)
    check_vjp_finite_differences(backend, F.interpolate, [x], kwargs, wrt=(0,))


def test_interpolate_area_is_adaptive_average_pooling(backend) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).normal(size=(2, 3, 9, 7))
    y = F.interpolate(backend.asarray(x), size=(4, 3), mode="area")
    assert_close(y, F.adaptive_avg_pool2d(x, (4, 3)))
    want = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=0.5, mode="area")
    assert_close(F.interpolate(backend.asarray(x), scale_factor=0.5, mode="area"), want.numpy())


@pytest.mark.parametrize(
    ("shape", "r"), [((2, 12, 3, 4), 2), ((18, 2, 2), 3), ((2, 1, 4, 2, 3), 2)]
)
def test_pixel_shuffle_round_trip(backend, shape, r) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).normal(size=shape)
    xb = backend.asarray(x)
    y, pullback = F.vjp(F.pixel_shuffle, xb, r)
    backend.check_like(y, xb)
    assert_close(y, pixel_shuffle_loops(x, r), rtol=0, atol=0)
    assert_close(y, torch.nn.functional.pixel_shuffle(torch.tensor(x), r).numpy(), rtol=0, atol=0)
    back, unshuffle_pullback = F.vjp(F.pixel_unshuffle, y, r)
    assert_close(back, x, rtol=0, atol=0)
    dy = random_cotangent(tuple(y.shape))
    dx, _ = pullback(backend.asarray(dy))
    assert_close(dx, torch_vjp(torch.nn.functional.pixel_shuffle, [x, r], dy, wrt=(0,))[1][0])
    assert_close(unshuffle_pullback(backend.asarray(x))[0], y, rtol=0, atol=0)


def test_errors_name_the_argument(backend) -> None:
    x = backend.asarray(np.ones((1, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"mode: expected one of 'nearest'"):
        F.interpolate(x, size=2, mode="cubic")
    with pytest.raises(ValueError, match=r"mode: 'trilinear' interpolates \(N, C, D, H, W\)"):
        F.interpolate(x, size=2, mode="trilinear")
    with pytest.raises(ValueError, match=r"size, scale_factor: expected exactly one of them"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(ValueError, match=r"align_corners: only the linear modes"):
        F.interpolate(x, size=2, align_corners=True)
    with pytest.raises(ValueError, match=r"size: expected one value per spatial axis \(2\)"):
        F.interpolate(x, size=(2, 2, 2))
    with pytest.raises(ValueError, match=r"scale_factor: 0.1 gives an empty output"):
        F.interpolate(x, scale_factor=0.1)
    with pytest.raises(ValueError, match=r"antialias: anti-aliased resizing is not supported"):
        F.interpolate(x, size=2, mode="bilinear", antialias=True)
    with pytest.raises(ValueError, match=r"input: expected a 3-D, 4-D or 5-D array"):
        F.interpolate(backend.asarray(np.ones((2, 3))), size=2)
    with pytest.raises(ValueError, match=r"input: pixel_shuffle needs channels divisible by"):
        F.pixel_shuffle(x, 2)
    with pytest.raises(ValueError, match=r"upscale_factor: expected a positive int, got 0"):
        F.pixel_shuffle(x, 0)
    with pytest.raises(ValueError, match=r"input: pixel_unshuffle needs height and width"):
        F.pixel_unshuffle(x, 3)
    np.testing.assert_array_equal(xpnet.to_numpy(F.pixel_unshuffle(x, 2)).shape, (1, 8, 2, 2))
