"""linear, flatten and dropout: forward against loops / definitions, pullbacks against finite
differences and torch autograd, dropout masks against NumPy's generator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference_activations as ref
import xpnet
import xpnet.functional as F
from helpers import (
    BackendCase,
    assert_close,
    check_vjp_finite_differences,
    random_cotangent,
    to_numpy,
    tolerance,
    torch_vjp,
)

# ------------------------------------------------------------------------- linear

LINEAR = [
    # input shape, (out_features, in_features), bias?
    ((4,), (3, 4), True),
    ((2, 5), (3, 5), True),
    ((2, 5), (1, 5), False),
    ((2, 3, 4), (6, 4), True),
    ((2, 1, 3, 2), (2, 2), False),
    ((0, 3), (2, 3), True),
]


def _linear_args(x_shape, w_shape, with_bias, seed=0):
    rng = np.random.default_rng(seed)
    x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
    return x, w, (rng.normal(size=w_shape[0]) if with_bias else None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "w_shape", "with_bias"), LINEAR)
def test_linear_forward_matches_loops(backend, dtype, x_shape, w_shape, with_bias) -> None:
    x, w, b = _linear_args(x_shape, w_shape, with_bias)
    xb, wb = backend.asarray(x, dtype), backend.asarray(w, dtype)
    bb = None if b is None else backend.asarray(b, dtype)
    y = F.linear(xb, wb, bb)
    backend.check_like(y, xb)
    assert_close(y, ref.linear_loops(x, w, b), **tolerance(dtype))


@pytest.mark.parametrize(("x_shape", "w_shape", "with_bias"), LINEAR)
def test_linear_pullback_finite_differences(backend, x_shape, w_shape, with_bias) -> None:
    x, w, b = _linear_args(x_shape, w_shape, with_bias, seed=1)
    args = [x, w] if b is None else [x, w, b]
    check_vjp_finite_differences(backend, F.linear, args, wrt=tuple(range(len(args))))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "w_shape", "with_bias"), LINEAR)
def test_linear_pullback_matches_torch(backend, dtype, x_shape, w_shape, with_bias) -> None:
    torch = pytest.importorskip("torch")
    x, w, b = _linear_args(x_shape, w_shape, with_bias, seed=2)
    args = [x, w] if b is None else [x, w, b]
    on_backend = [backend.asarray(a, dtype) for a in args]
    y, pullback = F.vjp(F.linear, *on_backend)
    dy = random_cotangent(y.shape)
    grads = pullback(backend.asarray(dy, dtype))
    want_y, want = torch_vjp(torch.nn.functional.linear, args, dy, wrt=tuple(range(len(args))))
    assert_close(y, want_y, **tolerance(dtype))
    assert len(grads) == len(args)
    for grad, expected, arg in zip(grads, want, on_backend, strict=True):
        backend.check_like(grad, arg)
        assert_close(grad, expected, **tolerance(dtype))


def test_linear_bias_none_gives_no_gradient(backend) -> None:
    x, w, _ = _linear_args((2, 3), (4, 3), False)
    _, pullback = F.vjp(F.linear, backend.asarray(x), backend.asarray(w), None)
    dx, dw, db = pullback(backend.asarray(np.ones((2, 4))))
    assert db is None
    # With a cotangent of ones: dx[n, i] = sum_o w[o, i], dw[o, i] = sum_n x[n, i].
    assert_close(dx, np.tile(w.sum(axis=0), (2, 1)))
    assert_close(dw, np.tile(x.sum(axis=0), (4, 1)))


@st.composite
def linear_cases(draw: st.DrawFn) -> tuple:
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=3)))
    in_features, out_features = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return lead, in_features, out_features, draw(st.booleans()), draw(st.integers(0, 2**32 - 1))


@given(case=linear_cases())
def test_linear_random_shapes(backend: BackendCase, case) -> None:
    lead, in_features, out_features, with_bias, seed = case
    x, w, b = _linear_args((*lead, in_features), (out_features, in_features), with_bias, seed)
    args = [x, w] if b is None else [x, w, b]
    y, pullback = F.vjp(F.linear, *[backend.asarray(a) for a in args])
    assert_close(y, ref.linear_loops(x, w, b))
    dy = random_cotangent(y.shape, seed=seed % 1000)
    grads = pullback(backend.asarray(dy))
    try:
        import torch
    except ImportError:
        check_vjp_finite_differences(backend, F.linear, args, wrt=tuple(range(len(args))))
        return
    _, want = torch_vjp(torch.nn.functional.linear, args, dy, wrt=tuple(range(len(args))))
    for grad, expected in zip(grads, want, strict=True):
        assert_close(grad, expected)


def test_linear_errors_name_the_argument(backend) -> None:
    x = backend.asarray(np.ones((2, 4)))
    w = backend.asarray(np.ones((3, 4)))
    with pytest.raises(
        ValueError,
        match=r"weight: expects in_features=5 \(weight shape \(3, 5\)\), but input has 4 "
        r"features in its last dimension \(input shape \(2, 4\)\)",
    ):
        F.linear(x, backend.asarray(np.ones((3, 5))))
    with pytest.raises(ValueError, match=r"weight: expected a 2-D array \(out_features, in_f"):
        F.linear(x, backend.asarray(np.ones(4)))
    with pytest.raises(ValueError, match=r"input: expected an array of at least 1 dimension"):
        F.linear(backend.asarray(np.float64(1.0)), backend.asarray(np.ones((3, 1))))
    with pytest.raises(ValueError, match=r"bias: expected shape \(3,\) .* got \(4,\)"):
        F.linear(x, w, backend.asarray(np.ones(4)))
    with pytest.raises(TypeError, match=r"input: expected a floating-point array"):
        F.linear(backend.asarray(np.ones((2, 4), dtype=np.int64)), w)
    with pytest.raises(TypeError, match=r"weight: expected dtype .*float64.* got .*float32"):
        F.linear(x, backend.asarray(np.ones((3, 4)), "float32"))
    with pytest.raises(TypeError, match=r"bias: expected dtype .*float64.* got .*float32"):
        F.vjp(F.linear, x, w, backend.asarray(np.ones(3), "float32"))
    with pytest.raises(TypeError, match=r"weight: expected an array, got list"):
        F.linear(x, [[1.0] * 4] * 3)


# ------------------------------------------------------------------------ flatten

FLATTEN = [
    ((2, 3, 4, 5), 0, -1),
    ((2, 3, 4, 5), 1, -1),
    ((2, 3, 4, 5), 1, 2),
    ((2, 3, 4, 5), -3, -2),
    ((2, 3, 4, 5), 2, 2),
    ((2, 3, 4, 5), 3, -1),
    ((2, 0, 3), 1, 2),
    ((7,), 0, 0),
    ((), 0, -1),
    ((), -1, 0),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("shape", "start_dim", "end_dim"), FLATTEN)
def test_flatten_matches_definition_and_torch(backend, dtype, shape, start_dim, end_dim) -> None:
    x = np.asarray(np.random.default_rng(0).normal(size=shape)).astype(dtype)
    xb = backend.asarray(x, dtype)
    y = F.flatten(xb, start_dim, end_dim)
    backend.check_like(y, xb)
    expected_shape = ref.flatten_shape(shape, start_dim, end_dim)
    assert tuple(y.shape) == expected_shape
    # Same elements in the same row-major order.
    np.testing.assert_array_equal(to_numpy(y).ravel(), x.astype(float).ravel())
    torch = pytest.importorskip("torch")
    assert tuple(torch.flatten(torch.from_numpy(x), start_dim, end_dim).shape) == expected_shape


@pytest.mark.parametrize(("shape", "start_dim", "end_dim"), FLATTEN)
def test_flatten_pullback(backend, shape, start_dim, end_dim) -> None:
    x = np.asarray(np.random.default_rng(1).normal(size=shape))
    kwargs = {"start_dim": start_dim, "end_dim": end_dim}
    check_vjp_finite_differences(backend, F.flatten, [x], kwargs, wrt=(0,))
    y, pullback = F.vjp(F.flatten, backend.asarray(x), **kwargs)
    dy = random_cotangent(y.shape)
    (dx,) = pullback(backend.asarray(dy))
    _, (want,) = torch_vjp(lambda t: t.flatten(start_dim, end_dim), [x], dy, wrt=(0,))
    assert_close(dx, want, rtol=0, atol=0)


def test_flatten_keeps_integer_arrays(backend) -> None:
    # A pure reshape: unlike the numeric ops it accepts any dtype (e.g. integer targets).
    x = backend.asarray(np.arange(6, dtype=np.int64).reshape(2, 3))
    y = F.flatten(x)
    backend.check_like(y, x)
    assert xpnet.to_numpy(y).tolist() == list(range(6))


def test_flatten_errors_name_the_argument(backend) -> None:
    x = backend.asarray(np.ones((2, 3, 4)))
    with pytest.raises(
        ValueError,
        match=r"start_dim: must not come after end_dim, got "
        r"start_dim=2 \(axis 2\) and end_dim=1 \(axis 1\)",
    ):
        F.flatten(x, 2, 1)
    with pytest.raises(
        ValueError,
        match=r"start_dim: expected an int in \[-3, 2\] for a 3-D "
        r"input, got 3",
    ):
        F.flatten(x, 3)
    with pytest.raises(ValueError, match=r"end_dim: expected an int in \[-3, 2\] .* got -4"):
        F.vjp(F.flatten, x, end_dim=-4)
    with pytest.raises(TypeError, match=r"start_dim: expected an int, got float"):
        F.flatten(x, 1.0)
    with pytest.raises(ValueError, match=r"end_dim: expected an int in \[-1, 0\] for a 0-D"):
        F.flatten(backend.asarray(np.float64(1.0)), 0, 1)
    with pytest.raises(TypeError, match=r"input: expected an array, got tuple"):
        F.flatten((1.0, 2.0))


# ------------------------------------------------------------------------ dropout


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_mask_follows_the_seed_on_every_backend(backend, dtype, p) -> None:
    shape = (4, 3, 5)
    x = np.random.default_rng(0).normal(size=shape).astype(dtype).astype(float)
    xb = backend.asarray(x, dtype)
    y = F.dropout(xb, p, rng=123)
    backend.check_like(y, xb)
    keep = ref.dropout_keep_mask(123, shape, p)
    assert 0 < keep.sum() < keep.size  # both outcomes are exercised
    assert_close(y, np.where(keep, x / (1 - p), 0.0), **tolerance(dtype))
    # A generator object is consumed like the seed's fresh generator.
    again = F.dropout(xb, p, rng=np.random.default_rng(123))
    assert_close(again, to_numpy(y), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout_pullback_reuses_the_mask(backend, dtype) -> None:
    p, shape = 0.3, (3, 7)
    x = np.random.default_rng(1).normal(size=shape)
    xb = backend.asarray(x, dtype)
    y, pullback = F.vjp(F.dropout, xb, p, rng=np.random.default_rng(9))
    dy = random_cotangent(shape)
    dx, dp = pullback(backend.asarray(dy, dtype))
    assert dp is None
    backend.check_like(dx, xb)
    keep = ref.dropout_keep_mask(9, shape, p)
    assert_close(y, np.where(keep, x / (1 - p), 0.0), **tolerance(dtype))
    assert_close(dx, dy * keep / (1 - p), **tolerance(dtype))


def test_dropout_pullback_finite_differences(backend) -> None:
    x = np.random.default_rng(2).normal(size=(4, 5))
    # An int seed gives a fresh generator per call, so every evaluation uses one mask.
    check_vjp_finite_differences(backend, F.dropout, [x], {"p": 0.4, "rng": 5}, wrt=(0,))


def test_dropout_global_seed(backend) -> None:
    shape = (6, 6)
    xb = backend.asarray(np.ones(shape))
    xpnet.seed(2024)
    first = to_numpy(F.dropout(xb, 0.5))
    second = to_numpy(F.dropout(xb, 0.5))
    generator = np.random.default_rng(2024)
    assert_close(first, np.where(generator.random(shape) >= 0.5, 2.0, 0.0))
    assert_close(second, np.where(generator.random(shape) >= 0.5, 2.0, 0.0))
    xpnet.seed(2024)
    assert_close(F.dropout(xb, 0.5), first, rtol=0, atol=0)


def test_dropout_inactive_cases_match_torch(backend) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).normal(size=(2, 4))
    xb = backend.asarray(x)
    dy = random_cotangent((2, 4))
    for kwargs in ({"p": 0.5, "training": False}, {"p": 0.0}, {"p": 1.0}):
        y, pullback = F.vjp(F.dropout, xb, **kwargs)
        if kwargs["p"] < 1.0:
            assert y is xb  # returned unchanged, as documented
        (dx,) = pullback(backend.asarray(dy))
        backend.check_like(y, xb)
        backend.check_like(dx, xb)
        want_y, (want_dx,) = torch_vjp(
            torch.nn.functional.dropout, [x], dy, wrt=(0,), kwargs=kwargs
        )
        assert_close(y, want_y, rtol=0, atol=0)
        assert_close(dx, want_dx, rtol=0, atol=0)


def test_dropout_of_a_0d_array(backend) -> None:
    xb = backend.asarray(np.float64(2.0))
    y = F.dropout(xb, 0.5, rng=0)
    keep = ref.dropout_keep_mask(0, (), 0.5)
    assert tuple(y.shape) == ()
    assert_close(y, 4.0 if keep else 0.0)


def test_dropout_errors_name_the_argument(backend) -> None:
    x = backend.asarray(np.ones((2, 3)))
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"p: expected a dropout probability in \[0, 1\]"):
            F.dropout(x, p)
    with pytest.raises(TypeError, match=r"p: expected a real number in \[0, 1\], got str"):
        F.dropout(x, "0.5")
    # inplace is a hint: a new array with the same mask, the input untouched
    np.testing.assert_array_equal(
        xpnet.to_numpy(F.dropout(x, 0.5, inplace=True, rng=3)),
        xpnet.to_numpy(F.dropout(x, 0.5, rng=3)),
    )
    np.testing.assert_array_equal(xpnet.to_numpy(x), np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"input: expected a floating-point array"):
        F.dropout(backend.asarray(np.ones((2, 3), dtype=np.int64)), 0.5)
    with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator"):
        F.dropout(x, 0.5, rng="seed")


# ---------------------------------------------------------------- channel dropouts

CHANNEL_DROPOUTS = [
    # (function, input shape, mask shape: one value per (sample, channel))
    (F.dropout1d, (3, 4, 5), (3, 4, 1)),
    (F.dropout1d, (4, 5), (4, 1)),
    (F.dropout2d, (2, 3, 4, 5), (2, 3, 1, 1)),
    (F.dropout2d, (3, 4, 5), (3, 1, 1)),
    (F.dropout3d, (2, 3, 2, 3, 2), (2, 3, 1, 1, 1)),
    (F.dropout3d, (3, 2, 3, 2), (3, 1, 1, 1)),
]


@pytest.mark.parametrize(("function", "shape", "mask_shape"), CHANNEL_DROPOUTS)
def test_channel_dropout_drops_whole_channels(backend, function, shape, mask_shape) -> None:
    p = 0.4
    x = np.random.default_rng(4).normal(size=shape)
    xb = backend.asarray(x)
    y, pullback = F.vjp(function, xb, p, rng=11)
    backend.check_like(y, xb)
    keep = ref.dropout_keep_mask(11, mask_shape, p)
    assert 0 < keep.sum() < keep.size  # kept and dropped channels both occur
    assert_close(y, np.where(keep, x / (1 - p), 0.0))
    dy = random_cotangent(shape)
    dx, dp = pullback(backend.asarray(dy))
    assert dp is None
    backend.check_like(dx, xb)
    assert_close(dx, np.where(keep, dy / (1 - p), 0.0))


@pytest.mark.parametrize("name", ["dropout1d", "dropout2d", "dropout3d"])
def test_channel_dropout_inactive_cases_match_torch(backend, name) -> None:
    torch = pytest.importorskip("torch")
    shape = {"dropout1d": (2, 3, 4), "dropout2d": (2, 3, 4, 2), "dropout3d": (2, 3, 2, 2, 2)}
    x = np.random.default_rng(5).normal(size=shape[name])
    dy = random_cotangent(x.shape)
    for kwargs in ({"p": 0.5, "training": False}, {"p": 0.0}, {"p": 1.0}):
        y, pullback = F.vjp(getattr(F, name), backend.asarray(x), **kwargs)
        (dx,) = pullback(backend.asarray(dy))
        want_y, (want_dx,) = torch_vjp(
            getattr(torch.nn.functional, name), [x], dy, wrt=(0,), kwargs=kwargs
        )
        assert_close(y, want_y, rtol=0, atol=0)
        assert_close(dx, want_dx, rtol=0, atol=0)


def test_channel_dropout_finite_differences(backend) -> None:
    x = np.random.default_rng(6).normal(size=(2, 3, 4, 4))
    check_vjp_finite_differences(backend, F.dropout2d, [x], {"p": 0.5, "rng": 2}, wrt=(0,))


def test_channel_dropout_errors_name_the_argument(backend) -> None:
    with pytest.raises(ValueError, match=r"input: dropout2d expects \(N, C, H, W\) or the same "
                       r"without N, got shape \(2, 3\)"):  # fmt: skip
        F.dropout2d(backend.asarray(np.ones((2, 3))), 0.5)
    with pytest.raises(ValueError, match=r"input: dropout1d expects \(N, C, L\)"):
        F.dropout1d(backend.asarray(np.ones((2, 3, 4, 5))), 0.5)
    with pytest.raises(ValueError, match=r"p: expected a dropout probability in \[0, 1\]"):
        F.dropout3d(backend.asarray(np.ones((2, 3, 4, 5))), 1.5)
