"""Activations and softmax: forward against math-module references, pullbacks against finite
differences and torch autograd, erf against math.erf and torch."""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference_activations as ref
import xpnet
import xpnet.functional as F
from helpers import (
    assert_close,
    check_vjp_finite_differences,
    random_cotangent,
    to_numpy,
    tolerance,
    torch_vjp,
)
from xpnet.functional._special import erf, erfc


def _torch_f(name: str, **kwargs: Any) -> Callable[..., Any]:
    def call(t: Any) -> Any:
        torch = pytest.importorskip("torch")
        return getattr(torch.nn.functional, name)(t, **kwargs)

    return call


# name, op, kwargs, scalar reference, scalar derivative reference (or None)
ACTIVATIONS = [
    ("relu", F.relu, {}, ref.relu),
    ("leaky_relu", F.leaky_relu, {}, ref.leaky_relu),
    ("leaky_relu_0.2", F.leaky_relu, {"negative_slope": 0.2}, lambda v: ref.leaky_relu(v, 0.2)),
    ("leaky_relu_-1.5", F.leaky_relu, {"negative_slope": -1.5}, lambda v: ref.leaky_relu(v, -1.5)),
    ("sigmoid", F.sigmoid, {}, ref.sigmoid),
    ("tanh", F.tanh, {}, ref.tanh),
    ("gelu", F.gelu, {}, ref.gelu),
    ("gelu_tanh", F.gelu, {"approximate": "tanh"}, ref.gelu_tanh),
    ("relu6", F.relu6, {}, ref.relu6),
    ("elu", F.elu, {}, ref.elu),
    ("elu_0.3", F.elu, {"alpha": 0.3}, lambda v: ref.elu(v, 0.3)),
    ("selu", F.selu, {}, ref.selu),
    ("hardsigmoid", F.hardsigmoid, {}, ref.hardsigmoid),
    ("hardswish", F.hardswish, {}, ref.hardswish),
    ("silu", F.silu, {}, ref.silu),
    ("softplus", F.softplus, {}, ref.softplus),
    (
        "softplus_beta2_threshold5",
        F.softplus,
        {"beta": 2.0, "threshold": 5.0},
        lambda v: ref.softplus(v, 2.0, 5.0),
    ),
    ("mish", F.mish, {}, ref.mish),
]
ACTIVATION_IDS = [case[0] for case in ACTIVATIONS]
TORCH_NAMES = {
    F.relu: "relu",
    F.leaky_relu: "leaky_relu",
    F.sigmoid: "sigmoid",
    F.tanh: "tanh",
    F.gelu: "gelu",
    F.relu6: "relu6",
    F.elu: "elu",
    F.selu: "selu",
    F.hardsigmoid: "hardsigmoid",
    F.hardswish: "hardswish",
    F.silu: "silu",
    F.softplus: "softplus",
    F.mish: "mish",
}


def _inputs(dtype: str = "float64", seed: int = 0) -> np.ndarray:
    """Random values plus exact zeros, tails and the ranges of erf's three branches."""
    rng = np.random.default_rng(seed)
    special = [0.0, -0.0, 0.3, -0.46875, 0.5, 3.9, -4.1, 6.0, -6.0, 12.0, -12.0, 30.0, -30.0]
    x = np.concatenate([rng.normal(scale=3.0, size=27), special]).reshape(5, 8)
    return x.astype(dtype).astype(np.float64)  # the value the backend will actually hold


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "op", "kwargs", "scalar"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_forward_matches_reference(backend, dtype, name, op, kwargs, scalar) -> None:
    x = _inputs(dtype)
    xb = backend.asarray(x, dtype)
    y = op(xb, **kwargs)
    backend.check_like(y, xb)
    assert_close(y, ref.elementwise(scalar, x), **tolerance(dtype))


@pytest.mark.parametrize(("name", "op", "kwargs", "scalar"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_pullback_finite_differences(backend, name, op, kwargs, scalar) -> None:
    rng = np.random.default_rng(1)
    # Keep clear of relu's kink at 0 (finite differences straddling it are meaningless).
    x = rng.choice([-1.0, 1.0], size=(3, 4)) * rng.uniform(0.05, 4.0, size=(3, 4))
    check_vjp_finite_differences(backend, op, [x], kwargs, wrt=(0,))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "op", "kwargs", "scalar"), ACTIVATIONS, ids=ACTIVATION_IDS)
def test_pullback_matches_torch(backend, dtype, name, op, kwargs, scalar) -> None:
    x = _inputs(dtype, seed=2)  # includes exact zeros: the kink conventions must match too
    xb = backend.asarray(x, dtype)
    y, pullback = F.vjp(op, xb, **kwargs)
    dy = random_cotangent(y.shape)
    (dx,) = pullback(backend.asarray(dy, dtype))
    backend.check_like(dx, xb)
    want_y, (want_dx,) = torch_vjp(_torch_f(TORCH_NAMES[op], **kwargs), [x], dy, wrt=(0,))
    assert_close(y, want_y, **tolerance(dtype))
    # torch scales hardsigmoid's gradient by 1/6 rounded to float32 in every dtype; xpnet
    # by the exact 1/6 (the loop reference above holds it to that).
    loose = {"rtol": 1e-7, "atol": 1e-12} if op is F.hardsigmoid else tolerance(dtype)
    assert_close(dx, want_dx, **loose)


@pytest.mark.parametrize(
    ("op", "kwargs", "derivative"),
    [
        (F.relu, {}, ref.relu_grad),
        (F.leaky_relu, {}, ref.leaky_relu_grad),
        (F.leaky_relu, {"negative_slope": 0.3}, lambda v: ref.leaky_relu_grad(v, 0.3)),
        (F.relu6, {}, ref.relu6_grad),
        (F.elu, {"alpha": 0.7}, lambda v: ref.elu_grad(v, 0.7)),
        (F.hardsigmoid, {}, ref.hardsigmoid_grad),
        (F.hardswish, {}, ref.hardswish_grad),
    ],
)
def test_gradient_at_the_kink_follows_torch(backend, op, kwargs, derivative) -> None:
    # Zero, and the other kinks: relu6's 6, the hard functions' -3 and 3.
    x = np.array([0.0, -0.0, 1e-300, -1e-300, 2.0, -2.0, 6.0, -3.0, 3.0, 6.5, -3.5])
    _, pullback = F.vjp(op, backend.asarray(x), **kwargs)
    (dx,) = pullback(backend.asarray(np.ones(x.shape)))
    assert_close(dx, ref.elementwise(derivative, x))
    name = TORCH_NAMES[op]
    _, (want,) = torch_vjp(_torch_f(name, **kwargs), [x], np.ones(x.shape), wrt=(0,))
    assert_close(dx, want, rtol=1e-7 if op is F.hardsigmoid else 1e-10)  # see above


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_is_stable_for_huge_inputs(backend, dtype) -> None:
    x = np.array([-1e4, -800.0, -100.0, -30.0, 30.0, 100.0, 800.0, 1e4, -np.inf, np.inf])
    xb = backend.asarray(x, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, pullback = F.vjp(F.sigmoid, xb)
        (dx,) = pullback(backend.asarray(np.ones(x.shape), dtype))
    backend.check_like(y, xb)
    finite = np.isfinite(x)
    assert_close(
        y,
        np.where(
            finite, ref.elementwise(ref.sigmoid, np.where(finite, x, 0)), (x > 0).astype(float)
        ),
        **tolerance(dtype),
    )
    # sigmoid' = sigmoid(x) sigmoid(-x), in relative terms even where it is tiny.
    want = np.array([ref.sigmoid(v) * ref.sigmoid(-v) if math.isfinite(v) else 0.0 for v in x])
    got = to_numpy(dx)
    # Relative precision down to the subnormal range (where float32 has only a few bits).
    tight = {"rtol": 1e-14, "atol": 0} if dtype == "float64" else {"rtol": 1e-5, "atol": 1e-40}
    np.testing.assert_allclose(got, want, **tight)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_limits_without_warnings(backend, dtype, approximate) -> None:
    x = np.array([-np.inf, -1e30, -1e4, 1e4, 1e30, np.inf])
    xb = backend.asarray(x, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, pullback = F.vjp(F.gelu, xb, approximate=approximate)
        (dx,) = pullback(backend.asarray(np.ones(6), dtype))
    # gelu(x) -> 0 as x -> -inf (torch gives nan at -inf itself), x as x -> +inf.
    assert_close(y, np.where(x > 0, x.astype(dtype), 0.0), rtol=0, atol=0)
    assert_close(dx, (x > 0).astype(float), rtol=0, atol=0)


def test_gelu_keeps_relative_accuracy_in_the_left_tail(backend) -> None:
    x = -np.linspace(5.0, 37.0, 33)
    y = to_numpy(F.gelu(backend.asarray(x)))
    # erfc(t) amplifies a relative error d in t (from rounding x / sqrt 2) to about 2 t**2 d,
    # up to ~1.4e-13 here; 1 + erf(t) would lose everything (it is 0 below x = -8.3).
    np.testing.assert_allclose(y, ref.elementwise(ref.gelu_via_erfc, x), rtol=1e-12, atol=0)
    assert np.all(y < 0)


# ------------------------------------------------------------------------------ erf


def _erf_points() -> np.ndarray:
    tails = np.geomspace(1e-300, 30.0, 600)
    return np.concatenate([np.linspace(-30.0, 30.0, 3001), tails, -tails, [0.0, -0.0, 0.46875]])


def _assert_relative(got: np.ndarray, want: np.ndarray, rtol: float, dtype: str) -> None:
    tiny = float(np.finfo(dtype).tiny)
    normal = np.abs(want) >= tiny
    np.testing.assert_allclose(got[normal], want[normal], rtol=rtol, atol=0)
    # Subnormal results (far tail of erfc) only to absolute precision: some backends (XLA)
    # flush them to zero.
    np.testing.assert_allclose(got[~normal], want[~normal], rtol=0, atol=tiny)


@pytest.mark.parametrize("fn", ["erf", "erfc"])
def test_erf_matches_math_to_round_off(backend, fn) -> None:
    x = _erf_points()
    ours = {"erf": erf, "erfc": erfc}[fn]
    scalar = getattr(math, fn)
    got = ours(backend.xp, backend.asarray(x))
    backend.check_like(got, backend.asarray(x))
    _assert_relative(to_numpy(got), ref.elementwise(scalar, x), rtol=2e-15, dtype="float64")


@pytest.mark.parametrize("fn", ["erf", "erfc"])
def test_erf_float32(backend, fn) -> None:
    x = _erf_points().astype(np.float32)
    xb = backend.asarray(x, "float32")
    got = {"erf": erf, "erfc": erfc}[fn](backend.xp, xb)
    backend.check_like(got, xb)
    want = ref.elementwise(getattr(math, fn), x.astype(np.float64))
    _assert_relative(to_numpy(got), want, rtol=2e-6, dtype="float32")


def test_erf_special_values(backend) -> None:
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = to_numpy(erf(backend.xp, backend.asarray(x)))
        c = to_numpy(erfc(backend.xp, backend.asarray(x)))
    np.testing.assert_array_equal(e, [1.0, -1.0, np.nan, 0.0, 0.0])
    assert np.signbit(e[4])  # erf is odd: erf(-0) = -0
    np.testing.assert_array_equal(c, [0.0, 2.0, np.nan, 1.0, 1.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_erf_matches_torch_special_erf(backend, dtype) -> None:
    torch = pytest.importorskip("torch")
    x = _erf_points().astype(dtype)
    got = to_numpy(erf(backend.xp, backend.asarray(x, dtype)))
    want = torch.special.erf(torch.from_numpy(x)).double().numpy()
    rtol = 4e-15 if dtype == "float64" else 4e-7
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-300 if dtype == "float64" else 1e-38)


# ------------------------------------------------------------------ softmax family

SOFTMAX = [
    ("softmax", F.softmax, ref.softmax_loops),
    ("log_softmax", F.log_softmax, ref.log_softmax_loops),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("dim", [0, 1, -1, 2, -3])
@pytest.mark.parametrize(("name", "op", "loops"), SOFTMAX, ids=["softmax", "log_softmax"])
def test_softmax_forward_matches_loops(backend, dtype, dim, name, op, loops) -> None:
    x = np.random.default_rng(3).normal(scale=2.0, size=(2, 3, 4)).astype(dtype).astype(float)
    xb = backend.asarray(x, dtype)
    y = op(xb, dim)
    backend.check_like(y, xb)
    assert_close(y, loops(x, dim), **tolerance(dtype))


@pytest.mark.parametrize(("name", "op", "loops"), SOFTMAX, ids=["softmax", "log_softmax"])
def test_softmax_pullback_finite_differences(backend, name, op, loops) -> None:
    x = np.random.default_rng(4).normal(size=(3, 5))
    for dim in (0, 1):
        check_vjp_finite_differences(backend, op, [x], {"dim": dim}, wrt=(0,))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [1.0, 3000.0])
@pytest.mark.parametrize(("name", "op", "loops"), SOFTMAX, ids=["softmax", "log_softmax"])
def test_softmax_huge_logits_match_loops_and_torch(backend, dtype, scale, name, op, loops) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 6)) * scale
    x[0, :3] = [3000.0, -3000.0, 2999.0]
    x[1] = 3000.0  # a row of ties
    x[2, :2] = [-3000.0, -2990.0]
    x = x.astype(dtype).astype(float)
    xb = backend.asarray(x, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, pullback = F.vjp(op, xb, dim=1)
        dy = random_cotangent(y.shape)
        (dx,) = pullback(backend.asarray(dy, dtype))
    for result in (y, dx):
        backend.check_like(result, xb)
        assert np.all(np.isfinite(to_numpy(result)))
    assert_close(y, loops(x, 1), **tolerance(dtype))
    want_y, (want_dx,) = torch_vjp(_torch_f(name, dim=1), [x], dy, wrt=(0,))
    assert_close(y, want_y, **tolerance(dtype))
    assert_close(dx, want_dx, **tolerance(dtype))


@st.composite
def softmax_cases(draw: st.DrawFn) -> tuple[tuple[int, ...], int, float, int]:
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=4)))
    size = max(len(shape), 1)
    dim = draw(st.integers(-size, size - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 30.0, 1000.0]))
    return shape, dim, scale, draw(st.integers(0, 2**32 - 1))


@pytest.mark.parametrize(("name", "op", "loops"), SOFTMAX, ids=["softmax", "log_softmax"])
@given(case=softmax_cases())
def test_softmax_random_shapes_and_dims(backend, name, op, loops, case) -> None:
    shape, dim, scale, seed = case
    x = np.asarray(np.random.default_rng(seed).normal(scale=scale, size=shape))
    y, pullback = F.vjp(op, backend.asarray(x), dim=dim)
    assert_close(y, loops(x, dim))
    dy = random_cotangent(shape, seed=seed % 1000)
    (dx,) = pullback(backend.asarray(dy))
    want_y, (want_dx,) = torch_vjp(_torch_f(name, dim=dim), [x], dy, wrt=(0,))
    assert_close(y, want_y)
    assert_close(dx, want_dx)


@pytest.mark.parametrize(("name", "op", "loops"), SOFTMAX, ids=["softmax", "log_softmax"])
def test_softmax_dtype_argument_casts_first(backend, name, op, loops) -> None:
    x = np.random.default_rng(6).normal(size=(2, 5)).astype(np.float32).astype(float)
    xb = backend.asarray(x, "float32")
    y, pullback = F.vjp(op, xb, dim=1, dtype=backend.xp.float64)
    assert y.dtype == backend.xp.float64
    assert_close(y, loops(x, 1))
    dy = random_cotangent(y.shape)
    (dx,) = pullback(backend.asarray(dy))
    backend.check_like(dx, xb)  # the gradient comes back in the input's dtype
    _, (want_dx,) = torch_vjp(_torch_f(name, dim=1), [x], dy, wrt=(0,))
    assert_close(dx, want_dx, **tolerance("float32"))


@pytest.mark.parametrize(("name", "op", "loops"), SOFTMAX, ids=["softmax", "log_softmax"])
def test_softmax_empty_arrays(backend, name, op, loops) -> None:
    for shape, dim in [((2, 0), 1), ((0, 3), 1), ((0, 3), 0)]:
        xb = backend.asarray(np.zeros(shape))
        y, pullback = F.vjp(op, xb, dim=dim)
        assert tuple(y.shape) == shape
        (dx,) = pullback(backend.asarray(np.zeros(shape)))
        assert tuple(dx.shape) == shape


# ------------------------------------------------------------------------- errors

ALL_OPS = [
    (F.relu, {}),
    (F.leaky_relu, {}),
    (F.sigmoid, {}),
    (F.tanh, {}),
    (F.gelu, {}),
    (F.softmax, {"dim": 0}),
    (F.log_softmax, {"dim": 0}),
]


@pytest.mark.parametrize(("op", "kwargs"), ALL_OPS, ids=[op.__name__ for op, _ in ALL_OPS])
def test_integer_input_is_rejected(backend, op, kwargs) -> None:
    xi = backend.asarray(np.array([1, -2, 3], dtype=np.int64))
    with pytest.raises(TypeError, match=r"input: expected a floating-point array .* got dtype"):
        op(xi, **kwargs)
    with pytest.raises(TypeError, match=r"input: expected a floating-point array"):
        F.vjp(op, xi, **kwargs)


@pytest.mark.parametrize(("op", "kwargs"), ALL_OPS, ids=[op.__name__ for op, _ in ALL_OPS])
def test_non_array_input_is_rejected(op, kwargs) -> None:
    with pytest.raises(TypeError, match=r"input: expected an array, got list"):
        op([1.0, 2.0], **kwargs)


def test_argument_errors_name_the_argument(backend) -> None:
    x = backend.asarray(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"negative_slope: expected a real number, got str"):
        F.leaky_relu(x, "0.1")
    with pytest.raises(TypeError, match=r"negative_slope: expected a real number, got bool"):
        F.leaky_relu(x, True)
    with pytest.raises(ValueError, match=r"approximate: expected 'none' or 'tanh', got 'fast'"):
        F.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match=r"approximate: expected 'none' or 'tanh'"):
        F.vjp(F.gelu, x, approximate=None)
    for op in (F.relu, F.leaky_relu):  # inplace is a hint: a new array, the input untouched
        before = to_numpy(x).copy()
        np.testing.assert_array_equal(to_numpy(op(x, inplace=True)), to_numpy(op(x)))
        np.testing.assert_array_equal(to_numpy(x), before)
    assert F.leaky_relu(x, 2).dtype == x.dtype  # an int slope is a real number


@pytest.mark.parametrize("op", [F.softmax, F.log_softmax])
def test_softmax_dim_errors(backend, op) -> None:
    x = backend.asarray(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"dim"):
        op(x)  # required, as torch's implicit choice is deprecated
    with pytest.raises(
        ValueError, match=r"dim: expected an int in \[-2, 1\] for a 2-D input, got 2"
    ):
        op(x, 2)
    with pytest.raises(ValueError, match=r"dim: expected an int in \[-2, 1\] .* got -3"):
        F.vjp(op, x, -3)
    with pytest.raises(TypeError, match=r"dim: expected an int, got float"):
        op(x, 1.0)
    with pytest.raises(ValueError, match=r"dim: expected an int in \[-1, 0\] for a 0-D input"):
        op(backend.asarray(np.float64(2.0)), 1)
    with pytest.raises(TypeError, match=r"dtype: expected None or a real floating dtype"):
        op(x, 1, dtype=backend.xp.int64)


@pytest.mark.parametrize(("name", "op", "loops"), SOFTMAX, ids=["softmax", "log_softmax"])
def test_softmax_of_a_0d_array(backend, name, op, loops) -> None:
    x = np.asarray(2.5)
    xb = backend.asarray(x)
    y, pullback = F.vjp(op, xb, dim=-1)
    assert tuple(y.shape) == ()
    assert_close(y, loops(x, 0))
    (dx,) = pullback(backend.asarray(np.asarray(0.7)))
    _, (want,) = torch_vjp(_torch_f(name, dim=0), [x], np.asarray(0.7), wrt=(0,))
    assert_close(dx, want)


# ----------------------------------------------------------------------------- prelu


@pytest.mark.parametrize(
    ("x_shape", "w_shape"), [((2, 3, 4, 4), (3,)), ((2, 3, 4), (1,)), ((3, 4), (4,)), ((4,), (1,))]
)
def test_prelu_three_ways(backend, x_shape, w_shape) -> None:
    rng = np.random.default_rng(11)
    # Clear of the kink for the finite differences; exact zeros for the kink convention.
    x = rng.choice([-1.0, 1.0], size=x_shape) * rng.uniform(0.05, 3.0, size=x_shape)
    w = rng.uniform(-0.5, 1.5, size=w_shape)
    y = F.prelu(backend.asarray(x), backend.asarray(w))
    assert_close(y, ref.prelu_loops(x, w))
    check_vjp_finite_differences(backend, F.prelu, [x, w], wrt=(0, 1))
    x_kink = x.copy()
    x_kink.reshape(-1)[:3] = 0.0
    dy = random_cotangent(x_shape)
    _, want = torch_vjp(lambda a, b: pytest.importorskip("torch").nn.functional.prelu(a, b),
                             [x_kink, w], dy, wrt=(0, 1))  # fmt: skip
    _, pullback = F.vjp(F.prelu, backend.asarray(x_kink), backend.asarray(w))
    dx, dw = pullback(backend.asarray(dy))
    assert_close(dx, want[0])
    assert_close(dw, want[1])


def test_prelu_errors(backend) -> None:
    x = backend.asarray(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"weight: 2 parameters, but the input .* has 3 channel"):
        F.prelu(x, backend.asarray(np.ones(2)))
    with pytest.raises(ValueError, match=r"weight: expected a 1-D array, got shape \(1, 1\)"):
        F.prelu(x, backend.asarray(np.ones((1, 1))))
    with pytest.raises(TypeError, match="weight: expected dtype"):
        F.prelu(x, backend.asarray(np.ones(3), "float32"))


# ---------------------------------------------------------------------------- one_hot


def test_one_hot_matches_torch(backend) -> None:
    torch = pytest.importorskip("torch")
    labels = np.array([[0, 3, 1], [2, 2, 0]])
    for classes in (-1, 5):
        got = xpnet.to_numpy(F.one_hot(backend.asarray(labels), classes))
        want = torch.nn.functional.one_hot(torch.tensor(labels), classes).numpy()
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.int64
    with pytest.raises(TypeError, match="tensor: expected an integer array"):
        F.one_hot(backend.asarray(np.ones(2)))
    with pytest.raises(
        ValueError, match=r"class indices must lie in \[0, 3\), got values from 0 to 3"
    ):
        F.one_hot(backend.asarray(labels), 3)
    with pytest.raises(ValueError, match="num_classes: expected -1 or a non-negative int"):
        F.one_hot(backend.asarray(labels), -2)


def test_relu_pullback_is_torchs_rule_at_non_finite_values(backend, device_paths) -> None:
    """Zero where the output is 0, even for an infinite or NaN cotangent; the cotangent
    passes where the output is NaN. The CPU path multiplies by the mask and must fall back
    to ``where`` when the cotangent is not finite."""
    x = np.array([-1.0, 0.0, 2.0, np.nan, -3.0, 4.0])
    for dy in (
        np.array([np.inf, np.nan, 5.0, 7.0, -np.inf, 1.0]),
        np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    ):
        _, pullback = F.vjp(F.relu, xpnet.asarray(x))
        (dx,) = pullback(xpnet.asarray(dy))
        expected = np.where(np.maximum(x, 0.0) <= 0, 0.0, dy)
        expected[3] = dy[3]  # the NaN output passes its cotangent
        np.testing.assert_array_equal(to_numpy(dx), expected)
        if importlib.util.find_spec("torch") is not None:
            import torch

            tx = torch.tensor(x, requires_grad=True)
            torch.relu(tx).backward(torch.tensor(dy))
            np.testing.assert_array_equal(to_numpy(dx), tx.grad.numpy())
