"""Losses: forward against plain loops, pullbacks against finite differences and torch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from reference_losses import (
    bce_with_logits_loops,
    cross_entropy_loops,
    huber_loss_loops,
    l1_loss_loops,
    mse_loss_loops,
    nll_loss_loops,
    smooth_l1_loss_loops,
)
from xpnet import nn

REDUCTIONS = ["mean", "sum", "none"]
DTYPES = ["float32", "float64"]


def _torch_f() -> Any:
    return pytest.importorskip("torch").nn.functional


def _class_data(
    shape: tuple[int, ...], ignore_index: int, weighted: bool, seed: int, scale: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Scores, targets with about a quarter ignored (never all), and optional class weights."""
    rng = np.random.default_rng(seed)
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
    x = scale * rng.normal(size=shape)
    t = rng.integers(0, classes, size=target_shape)
    t = np.where(rng.random(size=target_shape) < 0.25, ignore_index, t).astype(np.int64)
    keep = (ignore_index + 1) % classes if 0 <= ignore_index < classes else 0
    if t.ndim == 0 or keep == ignore_index:
        t = np.asarray(t if t.ndim else keep, dtype=np.int64)
    else:
        flat = t.ravel().copy()
        flat[0] = keep
        t = flat.reshape(target_shape)
    w = rng.random(classes) + 0.5 if weighted else None
    return x, t, w


# shape, ignore_index, weighted, label_smoothing
CLASS_CONFIGS = [
    ((5, 4), -100, False, 0.0),
    ((5, 4), 1, True, 0.0),  # ignore_index that is also a valid class
    ((3, 4, 2), -100, True, 0.2),
    ((2, 3, 2, 3), 2, True, 0.1),
    ((4,), -100, False, 0.3),  # unbatched
    ((6, 3), -1, True, 0.25),
    ((4, 1), -100, True, 0.5),  # one class
]


def _ce_kwargs(ignore_index: int, reduction: str, ls: float) -> dict[str, Any]:
    return {"ignore_index": ignore_index, "reduction": reduction, "label_smoothing": ls}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("shape", "ignore_index", "weighted", "ls"), CLASS_CONFIGS)
def test_cross_entropy_against_loops_and_torch(
    backend, device_paths, dtype, reduction, shape, ignore_index, weighted, ls
) -> None:
    x, t, w = _class_data(shape, ignore_index, weighted, seed=0)
    kwargs = _ce_kwargs(ignore_index, reduction, ls)
    xb = backend.asarray(x, dtype)
    wb = None if w is None else backend.asarray(w, dtype)
    loss, pullback = F.vjp(F.cross_entropy, xb, backend.asarray(t), wb, **kwargs)
    backend.check_like(loss, xb)
    expected = cross_entropy_loops(x, t, w, ignore_index, reduction, ls)
    assert_close(loss, expected, **tolerance(dtype))
    assert_close(
        F.cross_entropy(xb, backend.asarray(t), wb, **kwargs), expected, **tolerance(dtype)
    )
    dy = random_cotangent(loss.shape)
    dx, dt, dw = pullback(backend.asarray(dy, dtype))
    torch_loss, (want_dx,) = torch_vjp(
        _torch_f().cross_entropy, [x, t, w], dy, wrt=(0,), kwargs=kwargs
    )
    np.testing.assert_allclose(torch_loss, expected, rtol=1e-10, atol=1e-10)
    backend.check_like(dx, xb)
    assert_close(dx, want_dx, **tolerance(dtype))
    assert dt is None and dw is None  # torch does not differentiate targets or class weights


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("shape", "ignore_index", "weighted", "ls"), CLASS_CONFIGS)
def test_nll_loss_against_loops_and_torch(
    backend, device_paths, dtype, reduction, shape, ignore_index, weighted, ls
) -> None:
    logp, t, w = _class_data(shape, ignore_index, weighted, seed=1)
    xb = backend.asarray(logp, dtype)
    wb = None if w is None else backend.asarray(w, dtype)
    loss, pullback = F.vjp(F.nll_loss, xb, backend.asarray(t), wb, ignore_index, reduction)
    backend.check_like(loss, xb)
    expected = nll_loss_loops(logp, t, w, ignore_index, reduction)
    assert_close(loss, expected, **tolerance(dtype))
    assert_close(
        F.nll_loss(xb, backend.asarray(t), wb, ignore_index, reduction),
        expected,
        **tolerance(dtype),
    )
    dy = random_cotangent(loss.shape)
    dx = pullback(backend.asarray(dy, dtype))[0]
    kwargs = {"ignore_index": ignore_index, "reduction": reduction}
    torch_loss, (want_dx,) = torch_vjp(
        _torch_f().nll_loss, [logp, t, w], dy, wrt=(0,), kwargs=kwargs
    )
    np.testing.assert_allclose(torch_loss, expected, rtol=1e-10, atol=1e-10)
    backend.check_like(dx, xb)
    assert_close(dx, want_dx, **tolerance(dtype))


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("shape", "ignore_index", "weighted", "ls"), CLASS_CONFIGS)
def test_class_losses_finite_differences(backend, op, reduction, shape, ignore_index, weighted, ls):
    x, t, w = _class_data(shape, ignore_index, weighted, seed=2)
    if op == "cross_entropy":
        check_vjp_finite_differences(
            backend, F.cross_entropy, [x, t, w], _ce_kwargs(ignore_index, reduction, ls), wrt=(0,)
        )
    else:
        check_vjp_finite_differences(
            backend, F.nll_loss, [x, t, w, ignore_index, reduction], wrt=(0,)
        )


@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_nll_loss_tolerates_minus_infinity_where_it_does_not_count(backend, ignore_index) -> None:
    # log-probabilities of impossible classes are -inf; only counted targets may matter,
    # and an ignored element whose (ignored) class has -inf still contributes 0, not nan.
    logp = np.array([[-math.inf, 0.0], [math.log(0.25), math.log(0.75)], [0.0, -math.inf]])
    t = np.array([1, 0, 1]) if ignore_index == 1 else np.array([1, 0, 0])
    for reduction in REDUCTIONS:
        kwargs = {"ignore_index": ignore_index, "reduction": reduction}
        loss, pullback = F.vjp(F.nll_loss, backend.asarray(logp), backend.asarray(t), **kwargs)
        expected = nll_loss_loops(logp, t, None, ignore_index, reduction)
        assert np.all(np.isfinite(expected))
        assert_close(loss, expected)
        dy = random_cotangent(loss.shape)
        _, (want_dx,) = torch_vjp(_torch_f().nll_loss, [logp, t], dy, wrt=(0,), kwargs=kwargs)
        assert_close(pullback(backend.asarray(dy))[0], want_dx)


@pytest.mark.parametrize("ls", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_target_ignored_gives_nan_mean_and_zero_gradient(backend, ls, weighted) -> None:
    x, _, w = _class_data((3, 4), -100, weighted, seed=5)
    t = np.full(3, -100)
    wb = None if w is None else backend.asarray(w)
    loss, pullback = F.vjp(
        F.cross_entropy, backend.asarray(x), backend.asarray(t), wb, -100, "mean", ls
    )
    expected, (want_dx,) = torch_vjp(
        _torch_f().cross_entropy, [x, t, w], np.array(1.0), wrt=(0,), kwargs={"label_smoothing": ls}
    )
    assert math.isnan(float(to_numpy(loss))) and math.isnan(float(expected))
    assert math.isnan(float(cross_entropy_loops(x, t, w, label_smoothing=ls)))
    assert_close(pullback(backend.asarray(np.array(1.0)))[0], want_dx)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_is_stable_for_huge_logits(backend: BackendCase, dtype: str) -> None:
    x = np.array([[3000.0, -3000.0, 0.0], [-3000.0, 3000.0, 2999.0], [0.0, 0.0, -3000.0]])
    t = np.array([1, 2, 0])
    w = np.array([1.0, 2.0, 0.5])
    for ls in (0.0, 0.1):
        kwargs = {"reduction": "none", "label_smoothing": ls}
        loss, pullback = F.vjp(
            F.cross_entropy,
            backend.asarray(x, dtype),
            backend.asarray(t),
            backend.asarray(w, dtype),
            **kwargs,
        )
        expected = cross_entropy_loops(x, t, w, reduction="none", label_smoothing=ls)
        assert np.all(np.isfinite(expected))
        assert_close(loss, expected, **tolerance(dtype))
        dy = random_cotangent(loss.shape)
        dx = pullback(backend.asarray(dy, dtype))[0]
        _, (want_dx,) = torch_vjp(_torch_f().cross_entropy, [x, t, w], dy, wrt=(0,), kwargs=kwargs)
        assert np.all(np.isfinite(to_numpy(dx)))
        assert_close(dx, want_dx, **tolerance(dtype))


@st.composite
def class_cases(draw: st.DrawFn) -> tuple:
    classes = draw(st.integers(1, 5))
    unbatched = draw(st.booleans()) and draw(st.booleans())
    extra = draw(st.lists(st.integers(1, 3), max_size=1))
    shape = (classes,) if unbatched else (draw(st.integers(1, 4)), classes, *extra)
    ignore_index = draw(st.sampled_from([-100, -1, *range(classes)]))
    weighted = draw(st.booleans())
    ls = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    reduction = draw(st.sampled_from(REDUCTIONS))
    scale = draw(st.sampled_from([1.0, 30.0, 3000.0]))
    return shape, ignore_index, weighted, ls, reduction, scale, draw(st.integers(0, 2**32 - 1))


@given(case=class_cases())
def test_random_cross_entropy_against_loops_and_torch(backend: BackendCase, case) -> None:
    shape, ignore_index, weighted, ls, reduction, scale, seed = case
    x, t, w = _class_data(shape, ignore_index, weighted, seed, scale)
    kwargs = _ce_kwargs(ignore_index, reduction, ls)
    wb = None if w is None else backend.asarray(w)
    loss, pullback = F.vjp(F.cross_entropy, backend.asarray(x), backend.asarray(t), wb, **kwargs)
    expected = cross_entropy_loops(x, t, w, ignore_index, reduction, ls)
    # logits in the thousands: compare with an absolute tolerance scaled to the inputs
    assert_close(loss, expected, rtol=1e-10, atol=1e-10 * scale)
    dy = random_cotangent(loss.shape, seed=seed % 1000)
    dx = pullback(backend.asarray(dy))[0]
    try:
        import torch
    except ImportError:
        if scale == 1.0:
            check_vjp_finite_differences(backend, F.cross_entropy, [x, t, w], kwargs, wrt=(0,))
        return
    _, (want_dx,) = torch_vjp(
        torch.nn.functional.cross_entropy, [x, t, w], dy, wrt=(0,), kwargs=kwargs
    )
    assert_close(dx, want_dx)


# --------------------------------------------------------------------- regression losses

MSE_SHAPES = [(5,), (3, 4), (2, 3, 2, 2), ()]
# id, op, keyword arguments, loop reference
REGRESSION = [
    ("mse", F.mse_loss, {}, mse_loss_loops),
    ("l1", F.l1_loss, {}, l1_loss_loops),
    ("smooth_l1", F.smooth_l1_loss, {}, smooth_l1_loss_loops),
    ("smooth_l1_beta0.3", F.smooth_l1_loss, {"beta": 0.3},
     lambda x, t, r: smooth_l1_loss_loops(x, t, r, 0.3)),
    ("smooth_l1_beta0", F.smooth_l1_loss, {"beta": 0.0}, l1_loss_loops),
    ("huber", F.huber_loss, {}, huber_loss_loops),
    ("huber_delta2", F.huber_loss, {"delta": 2.0}, lambda x, t, r: huber_loss_loops(x, t, r, 2.0)),
]  # fmt: skip
REGRESSION_IDS = [case[0] for case in REGRESSION]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", MSE_SHAPES)
@pytest.mark.parametrize(("name", "op", "kwargs", "loops"), REGRESSION, ids=REGRESSION_IDS)
def test_regression_losses_match_loops_and_torch(
    backend, dtype, reduction, shape, name, op, kwargs, loops
) -> None:
    rng = np.random.default_rng(6)
    # Differences on both sides of every kink (|d| = beta or delta).
    x, t = np.asarray(rng.normal(size=shape) * 2.0), np.asarray(rng.normal(size=shape))
    xb, tb = backend.asarray(x, dtype), backend.asarray(t, dtype)
    loss, pullback = F.vjp(op, xb, tb, reduction, **kwargs)
    backend.check_like(loss, xb)
    assert_close(loss, loops(x, t, reduction), **tolerance(dtype))
    dy = random_cotangent(loss.shape)
    dx, dt, _ = pullback(backend.asarray(dy, dtype))
    _, (want_dx, want_dt) = torch_vjp(
        getattr(_torch_f(), op.__name__), [x, t], dy, wrt=(0, 1),
        kwargs={"reduction": reduction, **kwargs},
    )  # fmt: skip
    for grad, want in ((dx, want_dx), (dt, want_dt)):
        backend.check_like(grad, xb)
        assert_close(grad, want, **tolerance(dtype))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", MSE_SHAPES[:3])
@pytest.mark.parametrize(("name", "op", "kwargs", "loops"), REGRESSION, ids=REGRESSION_IDS)
def test_regression_losses_finite_differences(
    backend, reduction, shape, name, op, kwargs, loops
) -> None:
    rng = np.random.default_rng(7)
    x, t = rng.normal(size=shape) * 2.0, rng.normal(size=shape)
    # Clear of the kinks, where finite differences straddle two pieces.
    for width in (0.0, kwargs.get("beta", 1.0), kwargs.get("delta", 1.0)):
        near = np.abs(np.abs(x - t) - width) < 1e-3
        x = np.where(near, x + 0.01, x)
    check_vjp_finite_differences(backend, op, [x, t, reduction], kwargs, wrt=(0, 1))


@pytest.mark.parametrize(("name", "op", "kwargs", "loops"), REGRESSION[1:], ids=REGRESSION_IDS[1:])
def test_regression_gradients_at_the_kinks_follow_torch(backend, name, op, kwargs, loops) -> None:
    width = kwargs.get("beta", kwargs.get("delta", 1.0))
    d = np.array([0.0, width, -width, 2.0 * width + 0.5, 0.25 * width])
    t = np.linspace(-1.0, 1.0, d.size)
    x = t + d
    _, pullback = F.vjp(op, backend.asarray(x), backend.asarray(t), "sum", **kwargs)
    dx, _, _ = pullback(backend.asarray(np.asarray(1.0)))
    _, (want,) = torch_vjp(getattr(_torch_f(), op.__name__), [x, t], np.asarray(1.0), wrt=(0,),
                           kwargs={"reduction": "sum", **kwargs})  # fmt: skip
    assert_close(dx, want)


# --------------------------------------------- binary_cross_entropy_with_logits

# input shape, weight shape, pos_weight shape (None: not passed)
BCE_CONFIGS = [
    ((4, 3), None, None),
    ((4, 3), (3,), (3,)),
    ((2, 3, 4), (1, 3, 1), (4,)),
    ((2, 3), (2, 1), (1, 3)),
    ((5,), None, (5,)),
    ((3, 2), (3, 2), None),
    ((2, 3), (), ()),  # scalar weights
]


def _bce_data(shape, weight_shape, pos_shape, seed: int, scale: float = 2.0) -> list[Any]:
    rng = np.random.default_rng(seed)
    x = scale * rng.normal(size=shape)
    t = rng.random(size=shape)
    w = None if weight_shape is None else np.asarray(rng.random(size=weight_shape) + 0.5)
    pw = None if pos_shape is None else np.asarray(rng.random(size=pos_shape) * 3)
    return [x, t, w, pw]


def _bce_call(backend: BackendCase, data: list[Any], reduction: str, dtype: str = "float64"):
    x, t, w, pw = (None if a is None else backend.asarray(a, dtype) for a in data)
    return F.vjp(F.binary_cross_entropy_with_logits, x, t, w, reduction, pw), x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("shape", "weight_shape", "pos_shape"), BCE_CONFIGS)
def test_bce_with_logits_matches_loops_and_torch(
    backend, dtype, reduction, shape, weight_shape, pos_shape
) -> None:
    data = _bce_data(shape, weight_shape, pos_shape, seed=8)
    (loss, pullback), xb = _bce_call(backend, data, reduction, dtype)
    backend.check_like(loss, xb)
    x, t, w, pw = data
    assert_close(loss, bce_with_logits_loops(x, t, w, reduction, pw), **tolerance(dtype))
    dy = random_cotangent(loss.shape)
    grads = pullback(backend.asarray(dy, dtype))
    present = [i for i, a in enumerate(data) if a is not None]
    _, expected = _torch_bce(data, dy, reduction, present)
    positions = {0: 0, 1: 1, 2: 2, 3: 4}  # pos_weight comes after reduction
    for i, want in zip(present, expected, strict=True):
        grad = grads[positions[i]]
        backend.check_like(grad, xb)
        assert_close(grad, want, **tolerance(dtype))
    assert grads[3] is None  # reduction
    for i in {0, 1, 2, 3} - set(present):
        assert grads[positions[i]] is None


def _torch_bce(data: list[Any], dy: np.ndarray, reduction: str, wrt: list[int]):
    """torch's loss and gradients, in the order of ``wrt``. torch differentiates only
    ``input`` and ``target``; the ``weight`` and ``pos_weight`` gradients come from torch
    autograd of the defining formula (with torch's ``logsigmoid``)."""
    tf = _torch_f()

    def fn(x, t, w, pw):
        return tf.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=pw)

    def by_formula(x, t, w, pw):
        log_p, log_not_p = tf.logsigmoid(x), tf.logsigmoid(-x)
        positive = t * log_p if pw is None else pw * t * log_p
        elements = -(positive + (1 - t) * log_not_p)
        elements = elements if w is None else w * elements
        return {"none": elements, "sum": elements.sum(), "mean": elements.mean()}[reduction]

    loss, grads = torch_vjp(fn, data, dy, wrt=[i for i in wrt if i < 2])
    weights = [i for i in wrt if i >= 2]
    if weights:
        grads += torch_vjp(by_formula, data, dy, wrt=weights)[1]
    return loss, grads


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("shape", "weight_shape", "pos_shape"), BCE_CONFIGS[:-1])
def test_bce_with_logits_finite_differences(
    backend, reduction, shape, weight_shape, pos_shape
) -> None:
    x, t, w, pw = _bce_data(shape, weight_shape, pos_shape, seed=9)
    args = [x, t, w, reduction, pw]
    wrt = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]
    check_vjp_finite_differences(backend, F.binary_cross_entropy_with_logits, args, wrt=wrt)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_is_stable_for_huge_logits(backend: BackendCase, dtype: str) -> None:
    x = np.array([[3000.0, -3000.0, 0.0], [-3000.0, 3000.0, 1e-3]])
    t = np.array([[1.0, 1.0, 0.5], [0.0, 0.25, 1.0]])
    pw = np.array([2.0, 0.5, 1.5])
    data = [x, t, None, pw]
    (loss, pullback), _ = _bce_call(backend, data, "none", dtype)
    expected = bce_with_logits_loops(x, t, None, "none", pw)
    assert np.all(np.isfinite(expected))
    assert_close(loss, expected, **tolerance(dtype))
    dy = random_cotangent(loss.shape)
    grads = pullback(backend.asarray(dy, dtype))
    _, expected_grads = _torch_bce(data, dy, "none", [0, 1, 3])
    for grad, want in zip((grads[0], grads[1], grads[4]), expected_grads, strict=True):
        assert np.all(np.isfinite(to_numpy(grad)))
        assert_close(grad, want, **tolerance(dtype))


@st.composite
def bce_cases(draw: st.DrawFn) -> tuple:
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))

    def broadcastable() -> tuple[int, ...] | None:
        if draw(st.booleans()):
            return None
        keep = draw(st.integers(0, len(shape)))
        return tuple(n if draw(st.booleans()) else 1 for n in shape[len(shape) - keep :])

    return (
        shape,
        broadcastable(),
        broadcastable(),
        draw(st.sampled_from(REDUCTIONS)),
        draw(st.sampled_from([1.0, 3000.0])),
        draw(st.integers(0, 2**32 - 1)),
    )


@given(case=bce_cases())
def test_random_bce_with_logits_against_loops_and_torch(backend: BackendCase, case) -> None:
    shape, weight_shape, pos_shape, reduction, scale, seed = case
    data = _bce_data(shape, weight_shape, pos_shape, seed, scale)
    (loss, pullback), _ = _bce_call(backend, data, reduction)
    x, t, w, pw = data
    assert_close(
        loss, bce_with_logits_loops(x, t, w, reduction, pw), rtol=1e-10, atol=1e-10 * scale
    )
    dy = random_cotangent(loss.shape, seed=seed % 1000)
    grads = pullback(backend.asarray(dy))
    present = [i for i, a in enumerate(data) if a is not None]
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    _, expected = _torch_bce(data, dy, reduction, present)
    positions = {0: 0, 1: 1, 2: 2, 3: 4}
    for i, want in zip(present, expected, strict=True):
        assert_close(grads[positions[i]], want, rtol=1e-10, atol=1e-10 * scale)


# --------------------------------------------------------------------------- errors


def _ce_args(backend: BackendCase):
    x, t, w = _class_data((3, 4), -100, True, seed=10)
    return backend.asarray(x), backend.asarray(t), backend.asarray(w)


@pytest.mark.parametrize("op", [F.cross_entropy, F.nll_loss])
def test_targets_out_of_range_name_target_and_the_values(backend, op) -> None:
    x, _, _ = _ce_args(backend)
    bad = backend.asarray(np.array([7, -3, 1]))
    with pytest.raises(
        ValueError,
        match=r"target: expected class indices in \[0, 4\) or "
        r"ignore_index=-100, got -3, 7$",
    ):
        op(x, bad)
    many = backend.asarray(np.array([[4, 5], [6, 7], [8, 9]]))
    with pytest.raises(ValueError, match=r"got 4, 5, 6, 7, 8, \.\.\.$"):
        op(backend.asarray(np.zeros((3, 4, 2))), many)
    with pytest.raises(ValueError, match=r"ignore_index=2, got -100"):
        op(x, backend.asarray(np.array([0, -100, 2])), None, 2)
    # ignore_index itself is fine, in range or not
    op(x, backend.asarray(np.array([0, -5, 3])), None, -5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("op", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_unchecked_targets_out_of_range_make_the_loss_nan(
    backend, op, reduction, ignore_index
) -> None:
    # Where the range check would read the device (a GPU, a trace), it is skipped: a bad
    # target then makes its element's loss NaN, never a silent 0; the others are exact.
    from xpnet import config

    x, _, w = _class_data((4, 5), ignore_index, True, seed=11)
    t = np.array([7, 0, ignore_index, -3], dtype=np.int64)
    xb, wb = backend.asarray(x), backend.asarray(w)
    good = np.array([2, 0, ignore_index, 3], dtype=np.int64)
    kwargs = {"ignore_index": ignore_index, "reduction": reduction}
    with config.value_checks(False):
        loss = to_numpy(op(xb, backend.asarray(t), wb, **kwargs))
        fine = to_numpy(op(xb, backend.asarray(good), wb, **kwargs))
    reference = cross_entropy_loops if op is F.cross_entropy else nll_loss_loops
    assert_close(fine, reference(x, good, w, ignore_index=ignore_index, reduction=reduction))
    if reduction == "none":
        assert np.isnan(loss[0]) and np.isnan(loss[3])
        assert_close(loss[1:3], to_numpy(fine)[1:3])
    else:
        assert np.isnan(loss)
    with config.value_checks(True), pytest.raises(ValueError, match=r"got -3, 7$"):
        op(xb, backend.asarray(t), wb, **kwargs)


def test_value_checks_rejects_a_non_bool() -> None:
    from xpnet import config

    with pytest.raises(ValueError, match="value checks: expected True, False or None"):
        with config.value_checks("yes"):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize("op", [F.cross_entropy, F.nll_loss])
def test_class_loss_argument_errors(backend, op) -> None:
    x, t, _ = _ce_args(backend)
    with pytest.raises(
        TypeError,
        match=r"target: expected integer class indices, got dtype "
        r".*float.*class probabilities .* not supported",
    ):
        op(x, backend.asarray(np.full((3, 4), 0.25)))
    with pytest.raises(TypeError, match=r"input: expected a floating-point array"):
        op(backend.asarray(np.ones((3, 4), dtype=np.int64)), t)
    with pytest.raises(ValueError, match=r"reduction: expected 'none', 'mean' or 'sum', got 'avg'"):
        op(x, t, reduction="avg")
    with pytest.raises(ValueError, match=r"target: expected shape \(3,\) \(input has shape"):
        op(x, backend.asarray(np.zeros(4, dtype=np.int64)))
    with pytest.raises(ValueError, match=r"target: expected shape \(\) \(one class index"):
        op(x[0, ...], t)
    with pytest.raises(ValueError, match=r"weight: expected shape \(4,\) \(one weight per class\)"):
        op(x, t, backend.asarray(np.ones(3)))
    with pytest.raises(TypeError, match=r"weight: expected dtype .*float64.* got .*float32"):
        op(x, t, backend.asarray(np.ones(4), "float32"))
    with pytest.raises(TypeError, match=r"ignore_index: expected an int, got 1.5"):
        op(x, t, None, 1.5)


def test_label_smoothing_must_be_in_unit_interval(backend: BackendCase) -> None:
    x, t, _ = _ce_args(backend)
    with pytest.raises(
        ValueError, match=r"label_smoothing: expected a value in \[0.0, 1.0\], got 1.5"
    ):
        F.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"label_smoothing: .* got -0.1"):
        F.cross_entropy(x, t, label_smoothing=-0.1)


def test_elementwise_loss_errors(backend: BackendCase) -> None:
    x = backend.asarray(np.zeros((3, 4)))
    with pytest.raises(
        ValueError,
        match=r"target: expected shape \(3, 4\) \(the input's; xpnet "
        r"does not broadcast",
    ):
        F.mse_loss(x, backend.asarray(np.zeros((3, 1))))
    with pytest.raises(TypeError, match=r"input: expected a floating-point array"):
        F.mse_loss(backend.asarray(np.zeros((3, 4), dtype=np.int64)), x)
    with pytest.raises(TypeError, match=r"target: expected dtype .*float64.* got .*float32"):
        F.mse_loss(x, backend.asarray(np.zeros((3, 4)), "float32"))
    with pytest.raises(ValueError, match=r"reduction: expected 'none', 'mean' or 'sum', got None"):
        F.mse_loss(x, x, reduction=None)
    with pytest.raises(ValueError, match="beta: expected a non-negative number, got -1"):
        F.smooth_l1_loss(x, x, beta=-1)
    with pytest.raises(ValueError, match="delta: expected a positive number, got 0"):
        F.huber_loss(x, x, delta=0)
    bce = F.binary_cross_entropy_with_logits
    with pytest.raises(ValueError, match=r"target: expected shape \(3, 4\)"):
        bce(x, backend.asarray(np.zeros(4)))
    with pytest.raises(
        ValueError,
        match=r"weight: expected a shape that broadcasts to the "
        r"input's \(3, 4\), got \(2, 3, 4\)",
    ):
        bce(x, x, backend.asarray(np.ones((2, 3, 4))))
    with pytest.raises(
        ValueError, match=r"pos_weight: expected a shape that broadcasts .* got \(3,\)"
    ):
        bce(x, x, pos_weight=backend.asarray(np.ones(3)))
    with pytest.raises(TypeError, match=r"pos_weight: expected dtype .*float64.* got .*float32"):
        bce(x, x, pos_weight=backend.asarray(np.ones(4), "float32"))
    with pytest.raises(ValueError, match=r"reduction: expected .* got 'elementwise'"):
        bce(x, x, reduction="elementwise")


# -------------------------------------------------------------------------- loss modules


def _class_batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)


# id, xpnet module, torch module (built from torch), make (input, target) on the host
LOSS_MODULES = [
    ("cross_entropy", lambda w: nn.CrossEntropyLoss(w, label_smoothing=0.1, ignore_index=2),
     lambda t, w: t.nn.CrossEntropyLoss(w, label_smoothing=0.1, ignore_index=2), "classes"),
    ("nll", lambda w: nn.NLLLoss(w, reduction="sum"),
     lambda t, w: t.nn.NLLLoss(w, reduction="sum"), "classes"),
    ("mse", lambda w: nn.MSELoss(), lambda t, w: t.nn.MSELoss(), "pairs"),
    ("l1", lambda w: nn.L1Loss(reduction="sum"), lambda t, w: t.nn.L1Loss(reduction="sum"),
     "pairs"),
    ("smooth_l1", lambda w: nn.SmoothL1Loss(beta=0.5), lambda t, w: t.nn.SmoothL1Loss(beta=0.5),
     "pairs"),
    ("huber", lambda w: nn.HuberLoss(delta=0.7), lambda t, w: t.nn.HuberLoss(delta=0.7),
     "pairs"),
    ("bce_with_logits", lambda w: nn.BCEWithLogitsLoss(pos_weight=w),
     lambda t, w: t.nn.BCEWithLogitsLoss(pos_weight=w), "binary"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "make_torch", "kind"), LOSS_MODULES,
                         ids=[m[0] for m in LOSS_MODULES])  # fmt: skip
def test_loss_modules_match_torch(backend, name, make, make_torch, kind) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    weight = rng.uniform(0.5, 2.0, size=4)
    if kind == "classes":
        x, t = _class_batch(rng)
    elif kind == "pairs":
        x, t = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    else:
        x, t = rng.normal(size=(6, 4)), rng.uniform(size=(6, 4))
    tloss_module = make_torch(torch, torch.tensor(weight))
    tx = torch.tensor(x, requires_grad=True)
    tloss = tloss_module(tx, torch.tensor(t))
    (tgrad,) = torch.autograd.grad(tloss, [tx])
    module = make(backend.asarray(weight))
    assert list(module.state_dict()) == list(tloss_module.state_dict())
    target = backend.asarray(t) if kind != "classes" else backend.asarray(t, "int64")
    value, grad = xpnet.value_and_grad(lambda inputs: module(inputs, target))(backend.asarray(x))
    assert_close(value, tloss.detach().numpy())
    assert_close(grad, tgrad.numpy())


def test_loss_modules_train_and_evaluate(backend) -> None:
    from xpnet.data import DataLoader, Dataset

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, size=30)
    images = (rng.normal(size=(30, 1, 2, 2)) * 0.1 + labels[:, None, None, None]).astype(np.float32)
    data = Dataset((images * 40).clip(0, 255).astype(np.uint8), labels, 3, name="toy")
    with xpnet.use_backend(backend.name, backend.device):
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=0))
        history = xpnet.fit(model, xpnet.optim.SGD(model, lr=0.1), DataLoader(data, 10), 2,
                            loss_fn=nn.CrossEntropyLoss(), test_loader=DataLoader(data, 10),
                            progress=False, log=None)  # fmt: skip
    eager = xpnet.evaluate(model, DataLoader(data, 10), loss_fn=F.cross_entropy)
    assert history[-1]["test_loss"] == pytest.approx(eager["loss"], rel=1e-6)
    with pytest.raises(ValueError, match="size_average: deprecated in torch and not supported"):
        nn.CrossEntropyLoss(size_average=True)
