"""F.pad: every mode against an index-map loop reference, finite differences and torch."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import (
    assert_close,
    check_vjp_finite_differences,
    random_cotangent,
    torch_vjp,
)
from reference_resize import pad_loops, pad_pullback_loops

CASES = [
    # (input shape, pad, mode)
    ((2, 3, 5), (2, 1), "reflect"),
    ((3, 4, 5), (1, 3, 2, 0), "reflect"),
    ((1, 2, 3, 4, 3), (1, 2, 2, 1, 2, 0), "reflect"),
    ((2, 4), (3, 2), "replicate"),
    ((2, 3, 2, 4), (4, 1, 0, 3), "replicate"),
    ((1, 1, 1, 3, 2), (1, 1, 2, 2, 3, 1), "replicate"),
    ((2, 3, 5), (5, 2), "circular"),
    ((3, 4, 5), (2, 1, 4, 3), "circular"),
    ((1, 2, 2, 3, 4), (1, 0, 3, 1, 0, 2), "circular"),
    ((2, 3, 4), (1, 2), "constant"),
    ((2, 3, 4), (-1, 2, 0, -2, 1, 1), "constant"),
    ((5,), (2, 3), "constant"),
]


@pytest.mark.parametrize(("shape", "pad", "mode"), CASES)
def test_pad_matches_the_loop_reference(backend, shape, pad, mode) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    value = 1.5 if mode == "constant" else None
    xb = backend.asarray(x)
    y, pullback = F.vjp(F.pad, xb, pad=pad, mode=mode, value=value)
    backend.check_like(y, xb)
    want, sources = pad_loops(x, pad, mode, 0.0 if value is None else value)
    assert_close(y, want, rtol=0, atol=0)
    dy = random_cotangent(want.shape)
    (dx,) = pullback(backend.asarray(dy))
    backend.check_like(dx, xb)
    assert_close(dx, pad_pullback_loops(shape, dy, sources))


@pytest.mark.parametrize(("shape", "pad", "mode"), CASES[::3])
def test_pad_pullback_finite_differences(backend, shape, pad, mode) -> None:
    x = np.random.default_rng(1).normal(size=shape)
    check_vjp_finite_differences(backend, F.pad, [x], {"pad": pad, "mode": mode}, wrt=(0,))


@pytest.mark.parametrize(("shape", "pad", "mode"), CASES)
def test_pad_matches_torch(backend, shape, pad, mode) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).normal(size=shape)
    kwargs = {"pad": pad, "mode": mode, "value": 0.5 if mode == "constant" else None}
    y, pullback = F.vjp(F.pad, backend.asarray(x), **kwargs)
    dy = random_cotangent(tuple(y.shape))
    want_y, (want_dx,) = torch_vjp(torch.nn.functional.pad, [x], dy, wrt=(0,), kwargs=kwargs)
    assert_close(y, want_y, rtol=0, atol=0)
    assert_close(pullback(backend.asarray(dy))[0], want_dx)


def test_pad_keeps_integer_and_boolean_dtypes(backend) -> None:
    x = backend.asarray(np.arange(6, dtype=np.int64).reshape(2, 3))
    y = F.pad(x, (1, 1), value=7.9)  # truncated to 7, as torch does
    backend.check_like(y, x)
    np.testing.assert_array_equal(xpnet.to_numpy(y), [[7, 0, 1, 2, 7], [7, 3, 4, 5, 7]])


def test_pad_errors_name_the_argument(backend) -> None:
    x = backend.asarray(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"mode: expected one of 'constant', 'reflect'"):
        F.pad(x, (1, 1), mode="symmetric")
    with pytest.raises(TypeError, match=r"pad: expected a sequence of ints, got 1"):
        F.pad(x, 1)
    with pytest.raises(ValueError, match=r"pad: expected an even number of ints.*got 3"):
        F.pad(x, (1, 1, 1))
    with pytest.raises(ValueError, match=r"pad: expected an even number .* at most 3 axes"):
        F.pad(x, (1,) * 8)
    with pytest.raises(ValueError, match=r"pad: mode 'reflect' needs pads smaller than the axis"):
        F.pad(x, (4, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"pad: mode 'circular' needs pads no larger"):
        F.pad(x, (0, 0, 4, 0), mode="circular")
    with pytest.raises(ValueError, match=r"pad: mode 'replicate' pads the last 1, 2 or 3 axes"):
        F.pad(backend.asarray(np.ones(4)), (1, 1), mode="replicate")
    with pytest.raises(ValueError, match=r"pad: mode 'reflect' takes non-negative pads"):
        F.pad(x, (-1, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"value: only mode 'constant' takes a fill value"):
        F.pad(x, (1, 0), mode="replicate", value=2.0)
    with pytest.raises(ValueError, match=r"leaves a negative size -1"):
        F.pad(x, (-3, -2))
    with pytest.raises(TypeError, match=r"input: expected a floating-point array"):
        F.pad(backend.asarray(np.ones((2, 3), dtype=np.int64)), (1, 1), mode="reflect")
