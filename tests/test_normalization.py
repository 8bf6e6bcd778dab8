"""batch_norm: forward and running statistics against plain loops and torch's mutated
buffers, pullback against finite differences and torch autograd."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xpnet.functional as F
from helpers import (
    BackendCase,
    assert_close,
    check_vjp_finite_differences,
    random_cotangent,
    tolerance,
    torch_vjp,
)
from reference_losses import batch_norm_loops

DTYPES = ["float32", "float64"]

# input shape, affine (weight and bias), running statistics, training, momentum, eps
CONFIGS = [
    ((6, 3), True, True, True, 0.1, 1e-5),
    ((4, 2, 5), False, True, True, 0.3, 1e-3),
    ((2, 3, 4, 3), True, False, True, 0.1, 1e-5),
    ((2, 3, 4, 3), True, True, False, 0.1, 1e-5),
    ((3, 2, 4), True, True, False, 0.5, 0.1),
    ((5, 4), False, True, False, 0.1, 1e-5),
    ((1, 2, 3, 2, 2), True, True, True, 0.2, 1e-5),  # 5-D, one sample
    ((1, 2, 2), True, True, True, 1.0, 1e-5),  # two values per channel
]
IDS = [
    f"{'train' if c[3] else 'eval'}-{'x'.join(map(str, c[0]))}-{i}" for i, c in enumerate(CONFIGS)
]


def _data(shape, affine: bool, running: bool, seed: int, scale: float = 1.0) -> list[Any]:
    """input, running_mean, running_var, weight, bias (None where absent)."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = scale * rng.normal(size=shape) + rng.normal(size=(1, c) + (1,) * (len(shape) - 2))
    mean = rng.normal(size=c) if running else None
    var = rng.random(c) + 0.5 if running else None
    weight = rng.normal(size=c) if affine else None
    bias = rng.normal(size=c) if affine else None
    return [x, mean, var, weight, bias]


def _on(backend: BackendCase, data: list[Any], dtype: str = "float64") -> list[Any]:
    return [None if a is None else backend.asarray(a, dtype) for a in data]


def _torch_batch_norm(data: list[Any], training: bool, momentum: float, eps: float):
    """torch's output and its running buffers after the in-place update."""
    torch = pytest.importorskip("torch")
    x, mean, var, weight, bias = (None if a is None else torch.tensor(a) for a in data)
    y = torch.nn.functional.batch_norm(x, mean, var, weight, bias, training, momentum, eps)
    host = [None if t is None else t.numpy() for t in (y, mean, var)]
    return host[0], host[1], host[2]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "affine", "running", "training", "momentum", "eps"), CONFIGS, ids=IDS
)
def test_forward_and_running_stats_match_loops_and_torch(
    backend, dtype, shape, affine, running, training, momentum, eps
) -> None:
    data = _data(shape, affine, running, seed=0)
    args = _on(backend, data, dtype)
    y, new_mean, new_var = F.batch_norm(*args, training, momentum, eps)
    want_y, want_mean, want_var = batch_norm_loops(*data, training, momentum, eps)
    torch_y, torch_mean, torch_var = _torch_batch_norm(data, training, momentum, eps)
    np.testing.assert_allclose(torch_y, want_y, rtol=1e-10, atol=1e-10)
    backend.check_like(y, args[0])
    assert_close(y, want_y, **tolerance(dtype))
    if not running:
        assert new_mean is None and new_var is None
        return
    for got, want, from_torch in (
        (new_mean, want_mean, torch_mean),
        (new_var, want_var, torch_var),
    ):
        np.testing.assert_allclose(from_torch, want, rtol=1e-10, atol=1e-10)
        backend.check_like(got, args[0])
        assert_close(got, want, **tolerance(dtype))
    if not training:  # evaluation returns the running statistics themselves
        assert new_mean is args[1] and new_var is args[2]


@pytest.mark.parametrize(
    ("shape", "affine", "running", "training", "momentum", "eps"), CONFIGS, ids=IDS
)
def test_pullback_finite_differences(backend, shape, affine, running, training, momentum, eps):
    data = _data(shape, affine, running, seed=1)
    # Evaluation mode is differentiable in the running statistics too; training is not.
    wrt = [i for i, a in enumerate(data) if a is not None and (i in (0, 3, 4) or not training)]
    check_vjp_finite_differences(
        backend, F.batch_norm, [*data, training, momentum, eps], wrt=wrt, output_index=0
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "affine", "running", "training", "momentum", "eps"), CONFIGS, ids=IDS
)
def test_pullback_matches_torch(backend, dtype, shape, affine, running, training, momentum, eps):
    torch = pytest.importorskip("torch")
    data = _data(shape, affine, running, seed=2)
    args = _on(backend, data, dtype)
    (y, _, _), pullback = F.vjp(F.batch_norm, *args, training, momentum, eps)
    dy = random_cotangent(y.shape)
    grads = pullback(backend.asarray(dy, dtype))
    assert len(grads) == 8 and grads[5:] == (None, None, None)

    # torch differentiates input, weight and bias (running buffers are not differentiable).
    present = [i for i in (0, 3, 4) if data[i] is not None]

    def fn(x, mean, var, weight, bias):
        return torch.nn.functional.batch_norm(x, mean, var, weight, bias, training, momentum, eps)

    want_y, expected = torch_vjp(fn, data, dy, wrt=present)
    assert_close(y, want_y, **tolerance(dtype))
    for i, want in zip(present, expected, strict=True):
        backend.check_like(grads[i], args[0])
        assert_close(grads[i], want, **tolerance(dtype))
    for i in {0, 3, 4} - set(present):
        assert grads[i] is None
    if training or not running:
        assert grads[1] is None and grads[2] is None
        return

    # In evaluation mode the output depends on the running statistics: check their
    # gradients with torch autograd of the defining formula.
    def formula(x, mean, var, weight, bias):
        shape_c = (1, -1) + (1,) * (x.ndim - 2)
        y = (x - mean.reshape(shape_c)) / torch.sqrt(var.reshape(shape_c) + eps)
        if weight is not None:
            y = y * weight.reshape(shape_c) + bias.reshape(shape_c)
        return y

    _, (want_dmean, want_dvar) = torch_vjp(formula, data, dy, wrt=(1, 2))
    for got, want in ((grads[1], want_dmean), (grads[2], want_dvar)):
        backend.check_like(got, args[0])
        assert_close(got, want, **tolerance(dtype))


@st.composite
def norm_cases(draw: st.DrawFn) -> tuple:
    channels = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    training = draw(st.booleans())
    batch = draw(st.integers(1, 3))
    if training and batch * int(np.prod(spatial)) == 1:
        batch = 2
    return (
        (batch, channels, *spatial),
        draw(st.booleans()),
        draw(st.booleans()) or not training,
        training,
        draw(st.sampled_from([0.0, 0.1, 0.9, 1.0])),
        draw(st.sampled_from([1e-5, 1e-2])),
        draw(st.sampled_from([1e-3, 1.0, 100.0])),
        draw(st.integers(0, 2**32 - 1)),
    )


@given(case=norm_cases())
def test_random_configurations_against_loops_and_torch(backend: BackendCase, case) -> None:
    shape, affine, running, training, momentum, eps, scale, seed = case
    data = _data(shape, affine, running, seed, scale)
    (y, new_mean, new_var), pullback = F.vjp(
        F.batch_norm, *_on(backend, data), training, momentum, eps
    )
    want_y, want_mean, want_var = batch_norm_loops(*data, training, momentum, eps)
    assert_close(y, want_y, rtol=1e-9, atol=1e-9)
    if running:
        assert_close(new_mean, want_mean, rtol=1e-9, atol=1e-9 * scale)
        assert_close(new_var, want_var, rtol=1e-9, atol=1e-9 * scale**2)
    dy = random_cotangent(y.shape, seed=seed % 1000)
    grads = pullback(backend.asarray(dy))
    present = [i for i in (0, 3, 4) if data[i] is not None]
    try:
        import torch
    except ImportError:
        check_vjp_finite_differences(
            backend, F.batch_norm, [*data, training, momentum, eps], wrt=present, output_index=0
        )
        return
    torch_y, torch_mean, torch_var = _torch_batch_norm(data, training, momentum, eps)
    assert_close(y, torch_y, rtol=1e-9, atol=1e-9)
    if running:
        assert_close(new_mean, torch_mean, rtol=1e-9, atol=1e-9 * scale)
        assert_close(new_var, torch_var, rtol=1e-9, atol=1e-9 * scale**2)

    def fn(x, mean, var, weight, bias):
        return torch.nn.functional.batch_norm(x, mean, var, weight, bias, training, momentum, eps)

    _, expected = torch_vjp(fn, data, dy, wrt=present)
    for i, want in zip(present, expected, strict=True):
        # 1 / std grows to 1 / sqrt(eps) for nearly constant channels: relative tolerance
        assert_close(grads[i], want, rtol=1e-7, atol=1e-9 * float(np.max(np.abs(want)) + 1))


def _arrays(backend: BackendCase, shape=(4, 3)) -> list[Any]:
    return _on(backend, _data(shape, True, True, seed=3))


def test_training_needs_more_than_one_value_per_channel(backend: BackendCase) -> None:
    for shape in ((1, 3), (1, 3, 1, 1)):
        x, mean, var, w, b = _arrays(backend, shape)
        with pytest.raises(
            ValueError,
            match=r"expected more than 1 value per channel when "
            r"training, got input size \(1, 3",
        ):
            F.batch_norm(x, mean, var, w, b, training=True)
        F.batch_norm(x, mean, var, w, b, training=False)  # evaluation is fine


def test_argument_errors(backend: BackendCase) -> None:
    x, mean, var, w, _ = _arrays(backend)
    with pytest.raises(
        ValueError,
        match=r"momentum: expected a float, got None.*"
        r"num_batches_tracked",
    ):
        F.batch_norm(x, mean, var, training=True, momentum=None)
    with pytest.raises(ValueError, match=r"running_mean, running_var: evaluation mode .* got None"):
        F.batch_norm(x, None, None)
    with pytest.raises(
        ValueError,
        match=r"running_mean, running_var: expected both or neither, "
        r"got only running_var",
    ):
        F.batch_norm(x, None, var, training=True)
    with pytest.raises(
        ValueError,
        match=r"running_mean: expected shape \(3,\) \(one value per "
        r"channel\), got \(2,\)",
    ):
        F.batch_norm(x, mean[:2], var)
    with pytest.raises(ValueError, match=r"weight: expected shape \(3,\)"):
        F.batch_norm(x, mean, var, backend.asarray(np.ones(4)))
    with pytest.raises(ValueError, match=r"input: expected an array \(N, C\).* got shape \(4,\)"):
        F.batch_norm(x[:, 0], mean, var)
    with pytest.raises(TypeError, match=r"input: expected a floating-point array"):
        F.batch_norm(backend.asarray(np.ones((4, 3), dtype=np.int64)), mean, var)
    with pytest.raises(TypeError, match=r"running_var: expected dtype .*float64.* got .*float32"):
        F.batch_norm(x, mean, backend.asarray(np.ones(3), "float32"))
    with pytest.raises(TypeError, match=r"bias: expected dtype .*float64.* got .*float32"):
        F.batch_norm(x, mean, var, w, backend.asarray(np.ones(3), "float32"))
    with pytest.raises(TypeError, match=r"training: expected a bool, got 'yes'"):
        F.batch_norm(x, mean, var, training="yes")
    with pytest.raises(ValueError, match=r"eps: expected a non-negative float, got -1"):
        F.batch_norm(x, mean, var, eps=-1.0)
