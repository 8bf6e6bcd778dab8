"""Pooling: forward against plain loops, pullback against finite differences and torch."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import xpnet
import xpnet.functional as F
from helpers import (
    BackendCase,
    assert_close,
    check_vjp_finite_differences,
    random_cotangent,
    tolerance,
    torch_vjp,
)
from reference_pooling import (
    adaptive_avg_pool2d_loops,
    avg_pool2d_loops,
    max_pool2d_grad_loops,
    max_pool2d_loops,
)
from xpnet.functional.pooling._plan import window_plan


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _batched(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 4 else x[None]


def _max_loops(x: np.ndarray, kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    kernel = _pair(kwargs["kernel_size"])
    stride = kwargs.get("stride")
    out, indices = max_pool2d_loops(
        _batched(x),
        kernel,
        kernel if stride is None else _pair(stride),
        _pair(kwargs.get("padding", 0)),
        _pair(kwargs.get("dilation", 1)),
        kwargs.get("ceil_mode", False),
    )
    return (out, indices) if x.ndim == 4 else (out[0], indices[0])


def _max_grad_loops(x: np.ndarray, indices: np.ndarray, dy: np.ndarray) -> np.ndarray:
    dx = max_pool2d_grad_loops(_batched(x).shape, _batched(indices), _batched(dy))
    return dx.reshape(x.shape)


def _avg_loops(x: np.ndarray, kwargs: dict) -> np.ndarray:
    kernel = _pair(kwargs["kernel_size"])
    stride = kwargs.get("stride")
    out = avg_pool2d_loops(
        _batched(x),
        kernel,
        kernel if stride is None else _pair(stride),
        _pair(kwargs.get("padding", 0)),
        kwargs.get("ceil_mode", False),
        kwargs.get("count_include_pad", True),
        kwargs.get("divisor_override"),
    )
    return out if x.ndim == 4 else out[0]


def _adaptive_loops(x: np.ndarray, output_size: Any) -> np.ndarray:
    sizes = [output_size] * 2 if isinstance(output_size, int) else list(output_size)
    resolved = tuple(x.shape[-2 + k] if s is None else s for k, s in enumerate(sizes))
    out = adaptive_avg_pool2d_loops(_batched(x), resolved)
    return out if x.ndim == 4 else out[0]


def _torch_fn(name: str) -> Any:
    torch = pytest.importorskip("torch")
    return getattr(torch.nn.functional, name)


def _tiles(x_shape: tuple[int, ...], kwargs: dict, max_pool: bool) -> bool:
    """Whether the op takes the reshape path for this configuration."""
    x = np.zeros(x_shape)
    dilation = kwargs.get("dilation", 1) if max_pool else 1
    plan = window_plan(
        x,
        kwargs["kernel_size"],
        kwargs.get("stride"),
        kwargs.get("padding", 0),
        dilation,
        kwargs.get("ceil_mode", False),
    )
    return plan.tiles


MAX_CONFIGS = [
    ((2, 3, 6, 6), {"kernel_size": 2}),
    ((2, 2, 7, 5), {"kernel_size": 2}),
    ((1, 1, 4, 6), {"kernel_size": (2, 3), "stride": (2, 3)}),
    ((2, 6, 6), {"kernel_size": 3}),
    ((1, 2, 7, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    (
        (2, 2, 8, 7),
        {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)},
    ),
    ((1, 3, 7, 6), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ((1, 2, 5, 5), {"kernel_size": 2, "ceil_mode": True}),
    (
        (1, 2, 9, 8),
        {"kernel_size": (2, 3), "stride": (3, 2), "padding": 1, "dilation": 2, "ceil_mode": True},
    ),
    ((3, 5, 5), {"kernel_size": 2, "stride": 1}),
    ((1, 1, 2, 2), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
    ((1, 2, 5, 4), {"kernel_size": 2, "stride": 2, "padding": 1}),
]

AVG_CONFIGS = [
    ((2, 3, 6, 6), {"kernel_size": 2}),
    ((2, 2, 7, 5), {"kernel_size": (2, 3), "stride": (2, 3)}),
    ((2, 3, 4, 4), {"kernel_size": 2, "divisor_override": -3}),
    ((2, 4, 4), {"kernel_size": 2}),
    ((1, 2, 7, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 7, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ((1, 3, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    (
        (1, 3, 6, 7),
        {
            "kernel_size": (3, 2),
            "stride": (2, 3),
            "padding": (1, 1),
            "ceil_mode": True,
            "count_include_pad": False,
        },
    ),
    ((2, 2, 5, 5), {"kernel_size": 2, "ceil_mode": True}),
    ((1, 2, 6, 6), {"kernel_size": 3, "stride": 1, "padding": 1, "divisor_override": 4}),
    ((3, 5, 5), {"kernel_size": 2, "stride": 1, "padding": 1}),
    ((1, 1, 2, 2), {"kernel_size": 3, "stride": 2, "ceil_mode": True}),
]

ADAPTIVE_CONFIGS = [
    ((2, 3, 6, 6), 3),
    ((2, 3, 6, 6), 1),
    ((3, 6, 4), (3, 2)),
    ((2, 2, 7, 5), (3, 2)),
    ((1, 2, 5, 7), (None, 3)),
    ((1, 2, 5, 6), (2, None)),
    ((1, 2, 3, 4), (5, 7)),
    ((3, 5, 4), 3),
    ((2, 5, 3), (1, None)),
    ((2, 5, 3), 1),
]


def test_configurations_cover_both_paths() -> None:
    for configs, max_pool in ((MAX_CONFIGS, True), (AVG_CONFIGS, False)):
        paths = [_tiles(shape, kwargs, max_pool) for shape, kwargs in configs]
        assert 2 <= sum(paths) <= len(paths) - 2


# --- max_pool2d --------------------------------------------------------------------------------


def test_walkthrough_example(backend: BackendCase) -> None:
    # The walkthrough's feature map after ReLU; its published pooled value is 12.
    features = np.maximum([[-6.0, 12, 12], [-6, 8, 8], [-6, 6, 6]], 0)[None, None]
    pooled = F.max_pool2d(backend.asarray(features, "float32"), 2)
    expected, _ = max_pool2d_loops(features, (2, 2), (2, 2))
    assert expected.tolist() == [[[[12.0]]]]
    assert_close(pooled, expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "kwargs"), MAX_CONFIGS)
def test_max_forward_matches_loops(backend, dtype, x_shape, kwargs) -> None:
    x = np.random.default_rng(0).normal(size=x_shape)
    xb = backend.asarray(x, dtype)
    y = F.max_pool2d(xb, **kwargs)
    y_again, indices = F.max_pool2d(xb, **kwargs, return_indices=True)
    expected, expected_indices = _max_loops(x, kwargs)
    backend.check_like(y, xb)
    backend.check_like(y_again, xb)
    # A max copies an input element: exact in either dtype.
    assert_close(y, expected.astype(dtype), rtol=0, atol=0)
    assert_close(y_again, expected.astype(dtype), rtol=0, atol=0)
    assert array_api_compat.array_namespace(indices) is array_api_compat.array_namespace(xb)
    assert indices.dtype == backend.xp.int64
    np.testing.assert_array_equal(xpnet.to_numpy(indices), expected_indices)


@pytest.mark.parametrize(("x_shape", "kwargs"), MAX_CONFIGS)
def test_max_pullback_finite_differences(backend, device_paths, x_shape, kwargs) -> None:
    # Random normal inputs have no ties, so max pooling is differentiable there.
    x = np.random.default_rng(1).normal(size=x_shape)
    check_vjp_finite_differences(backend, F.max_pool2d, [x], kwargs, wrt=(0,))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "kwargs"), MAX_CONFIGS)
def test_max_pullback_and_indices_match_torch(backend, dtype, x_shape, kwargs) -> None:
    torch = pytest.importorskip("torch")
    # Round to the dtype first so both sides pool the same values.
    x = np.random.default_rng(2).normal(size=x_shape).astype(dtype).astype(np.float64)
    xb = backend.asarray(x, dtype)
    (y, indices), pullback = F.vjp(F.max_pool2d, xb, **kwargs, return_indices=True)
    dy = random_cotangent(y.shape)
    (dx,) = pullback(backend.asarray(dy, dtype))
    expected_y, (expected_dx,) = torch_vjp(
        torch.nn.functional.max_pool2d, [x], dy, wrt=(0,), kwargs=kwargs
    )
    _, expected_indices = torch.nn.functional.max_pool2d(
        torch.tensor(x), **kwargs, return_indices=True
    )
    backend.check_like(dx, xb)
    assert_close(y, expected_y, **tolerance(dtype))
    assert_close(dx, expected_dx, **tolerance(dtype))
    np.testing.assert_array_equal(xpnet.to_numpy(indices), expected_indices.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 1, "padding": 1},
        {"kernel_size": (2, 3), "stride": 1, "dilation": (2, 1), "ceil_mode": True},
    ],
)
def test_ties_send_the_gradient_to_the_first_maximum(backend, dtype, kwargs) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(2, 2, 6, 6)).astype(np.float64)
    xb = backend.asarray(x, dtype)
    (y, indices), pullback = F.vjp(F.max_pool2d, xb, **kwargs, return_indices=True)
    dy = random_cotangent(y.shape)
    (dx,) = pullback(backend.asarray(dy, dtype))
    expected_y, expected_indices = _max_loops(x, kwargs)
    assert_close(y, expected_y)
    np.testing.assert_array_equal(xpnet.to_numpy(indices), expected_indices)
    assert_close(dx, max_pool2d_grad_loops(x.shape, expected_indices, dy), **tolerance(dtype))
    _, (torch_dx,) = torch_vjp(_torch_fn("max_pool2d"), [x], dy, wrt=(0,), kwargs=kwargs)
    assert_close(dx, torch_dx, **tolerance(dtype))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [
        ((2, 3, 6, 6), {"kernel_size": 2}),
        ((2, 2, 7, 8), {"kernel_size": (2, 3)}),  # floor mode drops the last row
        ((2, 5, 9), {"kernel_size": 3, "stride": 3}),  # unbatched
    ],
)
def test_tiling_windows_ties_go_to_the_first_maximum(
    backend, device_paths, dtype, shape, kwargs
) -> None:
    # Windows that tile the input take a reshape fast path (no indices asked for; on the
    # GPU paths the forward's argmax); with many ties its gradient must still follow
    # torch's first-maximum rule.
    x = np.random.default_rng(7).integers(0, 3, size=shape).astype(np.float64)
    y, pullback = F.vjp(F.max_pool2d, backend.asarray(x, dtype), **kwargs)
    dy = random_cotangent(tuple(y.shape))
    (dx,) = pullback(backend.asarray(dy, dtype))
    expected_y, expected_indices = _max_loops(x, kwargs)
    assert_close(y, expected_y)
    assert_close(F.max_pool2d(backend.asarray(x, dtype), **kwargs), expected_y)
    assert_close(dx, _max_grad_loops(x, expected_indices, dy), **tolerance(dtype))
    _, (torch_dx,) = torch_vjp(_torch_fn("max_pool2d"), [x], dy, wrt=(0,), kwargs=kwargs)
    assert_close(dx, torch_dx, **tolerance(dtype))


def test_tiling_windows_send_a_nan_windows_gradient_to_its_first_nan(backend, device_paths) -> None:
    # The standard path's rule (torch's own kernel, native on the torch backend, takes the
    # last NaN: tests/test_native.py).
    x = np.random.default_rng(8).normal(size=(1, 1, 4, 4))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan  # window (0, 0): NaNs at offsets 1 and 2
    x[0, 0, 3, 3] = np.nan  # window (1, 1): a NaN at offset 3
    with xpnet.config.native_kernels(False):
        y, pullback = F.vjp(F.max_pool2d, backend.asarray(x), kernel_size=2)
        dy = random_cotangent(tuple(y.shape))
        (dx,) = pullback(backend.asarray(dy))
    y_np = xpnet.to_numpy(y)
    assert np.isnan(y_np[0, 0, 0, 0]) and np.isnan(y_np[0, 0, 1, 1])
    expected = np.zeros_like(x)
    for p in range(2):
        for q in range(2):
            window = x[0, 0, 2 * p : 2 * p + 2, 2 * q : 2 * q + 2].ravel()
            nans = np.flatnonzero(np.isnan(window))
            k = nans[0] if nans.size else int(np.argmax(window))
            expected[0, 0, 2 * p + k // 2, 2 * q + k % 2] = dy[0, 0, p, q]
    assert_close(dx, expected)


def test_windows_of_minus_infinity_pick_their_first_input_element(backend) -> None:
    # Padding is -inf too; torch still reports (and differentiates) an input element.
    x = np.full((1, 2, 3, 4), -np.inf)
    x[0, 0, 2, 3] = 1.0
    x[0, 1, 0, 0] = -1.0
    kwargs = {"kernel_size": 3, "stride": 1, "padding": 1}
    (y, indices), pullback = F.vjp(F.max_pool2d, backend.asarray(x), **kwargs, return_indices=True)
    dy = random_cotangent(y.shape)
    (dx,) = pullback(backend.asarray(dy))
    expected_y, expected_indices = _max_loops(x, kwargs)
    np.testing.assert_array_equal(xpnet.to_numpy(y), expected_y)
    np.testing.assert_array_equal(xpnet.to_numpy(indices), expected_indices)
    assert_close(dx, max_pool2d_grad_loops(x.shape, expected_indices, dy))
    torch = pytest.importorskip("torch")
    _, torch_indices = torch.nn.functional.max_pool2d(
        torch.tensor(x), **kwargs, return_indices=True
    )
    np.testing.assert_array_equal(xpnet.to_numpy(indices), torch_indices.numpy())
    _, (torch_dx,) = torch_vjp(torch.nn.functional.max_pool2d, [x], dy, wrt=(0,), kwargs=kwargs)
    assert_close(dx, torch_dx)


def test_window_wholly_in_the_padding(backend) -> None:
    # Dilation can leave a window with no input element; torch gives -inf there (and an
    # index past the input). The output is constant, so the gradient is zero.
    x = np.random.default_rng(4).normal(size=(1, 1, 2, 2))
    kwargs = {"kernel_size": 2, "padding": 1, "dilation": 3}
    (y, indices), pullback = F.vjp(F.max_pool2d, backend.asarray(x), **kwargs, return_indices=True)
    (dx,) = pullback(backend.asarray(np.ones((1, 1, 1, 1))))
    assert_close(dx, np.zeros_like(x))
    torch = pytest.importorskip("torch")
    expected_y, expected_indices = torch.nn.functional.max_pool2d(
        torch.tensor(x), **kwargs, return_indices=True
    )
    np.testing.assert_array_equal(xpnet.to_numpy(y), expected_y.numpy())
    np.testing.assert_array_equal(xpnet.to_numpy(indices), expected_indices.numpy())


def test_nan_propagates_and_its_index_points_at_a_nan(backend) -> None:
    x = np.random.default_rng(6).normal(size=(1, 2, 5, 5))
    x[0, 0, 1, 2] = x[0, 1, 3, 3] = x[0, 1, 4, 4] = np.nan
    kwargs = {"kernel_size": 3, "stride": 2, "padding": 1}
    y, indices = F.max_pool2d(backend.asarray(x), **kwargs, return_indices=True)
    torch = pytest.importorskip("torch")
    expected = torch.nn.functional.max_pool2d(torch.tensor(x), **kwargs).numpy()
    np.testing.assert_array_equal(xpnet.to_numpy(y), expected)  # NaN where torch has NaN
    picked = np.take_along_axis(x.reshape(1, 2, 25), xpnet.to_numpy(indices).reshape(1, 2, -1), 2)
    np.testing.assert_array_equal(picked.reshape(expected.shape), expected)


def test_positional_arguments_and_unbatched_indices(backend) -> None:
    x = np.random.default_rng(5).normal(size=(3, 5, 6))
    (y, indices), pullback = F.vjp(F.max_pool2d, backend.asarray(x), 3, 2, 1, 1, True, True)
    dy = random_cotangent(y.shape)
    grads = pullback(backend.asarray(dy))
    assert len(grads) == 7
    assert all(g is None for g in grads[1:])
    kwargs = {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}
    expected_y, expected_indices = _max_loops(x, kwargs)
    assert_close(y, expected_y)
    np.testing.assert_array_equal(xpnet.to_numpy(indices), expected_indices)
    assert_close(grads[0], _max_grad_loops(x, expected_indices, dy))


# --- avg_pool2d --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "kwargs"), AVG_CONFIGS)
def test_avg_forward_matches_loops(backend, dtype, x_shape, kwargs) -> None:
    x = np.random.default_rng(0).normal(size=x_shape)
    xb = backend.asarray(x, dtype)
    y = F.avg_pool2d(xb, **kwargs)
    backend.check_like(y, xb)
    assert_close(y, _avg_loops(x, kwargs), **tolerance(dtype))


@pytest.mark.parametrize(("x_shape", "kwargs"), AVG_CONFIGS)
def test_avg_pullback_finite_differences(backend, x_shape, kwargs) -> None:
    x = np.random.default_rng(1).normal(size=x_shape)
    check_vjp_finite_differences(backend, F.avg_pool2d, [x], kwargs, wrt=(0,))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "kwargs"), AVG_CONFIGS)
def test_avg_pullback_matches_torch(backend, dtype, x_shape, kwargs) -> None:
    x = np.random.default_rng(2).normal(size=x_shape)
    xb = backend.asarray(x, dtype)
    y, pullback = F.vjp(F.avg_pool2d, xb, **kwargs)
    dy = random_cotangent(y.shape)
    (dx,) = pullback(backend.asarray(dy, dtype))
    expected_y, (expected_dx,) = torch_vjp(
        _torch_fn("avg_pool2d"), [x], dy, wrt=(0,), kwargs=kwargs
    )
    backend.check_like(dx, xb)
    assert_close(y, expected_y, **tolerance(dtype))
    assert_close(dx, expected_dx, **tolerance(dtype))


# --- adaptive_avg_pool2d -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "output_size"), ADAPTIVE_CONFIGS)
def test_adaptive_forward_matches_loops(backend, dtype, x_shape, output_size) -> None:
    x = np.random.default_rng(0).normal(size=x_shape)
    xb = backend.asarray(x, dtype)
    y = F.adaptive_avg_pool2d(xb, output_size)
    backend.check_like(y, xb)
    assert_close(y, _adaptive_loops(x, output_size), **tolerance(dtype))


@pytest.mark.parametrize(("x_shape", "output_size"), ADAPTIVE_CONFIGS)
def test_adaptive_pullback_finite_differences(backend, x_shape, output_size) -> None:
    x = np.random.default_rng(1).normal(size=x_shape)
    check_vjp_finite_differences(backend, F.adaptive_avg_pool2d, [x, output_size], wrt=(0,))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "output_size"), ADAPTIVE_CONFIGS)
def test_adaptive_pullback_matches_torch(backend, dtype, x_shape, output_size) -> None:
    x = np.random.default_rng(2).normal(size=x_shape)
    xb = backend.asarray(x, dtype)
    y, pullback = F.vjp(F.adaptive_avg_pool2d, xb, output_size)
    dy = random_cotangent(y.shape)
    dx, d_size = pullback(backend.asarray(dy, dtype))
    assert d_size is None
    expected_y, (expected_dx,) = torch_vjp(
        _torch_fn("adaptive_avg_pool2d"), [x, output_size], dy, wrt=(0,)
    )
    backend.check_like(dx, xb)
    assert_close(y, expected_y, **tolerance(dtype))
    assert_close(dx, expected_dx, **tolerance(dtype))


def test_adaptive_empty_output_matches_torch(backend) -> None:
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).normal(size=(1, 2, 4, 5))
    for output_size in (0, (0, 2)):
        y = F.adaptive_avg_pool2d(backend.asarray(x), output_size)
        expected = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), output_size)
        assert tuple(y.shape) == tuple(expected.shape)


# --- random configurations ---------------------------------------------------------------------


@st.composite
def window_configs(draw: st.DrawFn, max_pool: bool) -> tuple:
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if max_pool else (1, 1)
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    ceil_mode = draw(st.booleans())
    sizes = []
    for k, d, p in zip(kernel, dilation, padding, strict=True):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)
        sizes.append(draw(st.integers(smallest, smallest + 5)))
    x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *sizes)
    if draw(st.booleans()):
        x_shape = x_shape[1:]
    kwargs: dict[str, Any] = {
        "kernel_size": kernel,
        "stride": stride if draw(st.booleans()) else None,
        "padding": padding,
        "ceil_mode": ceil_mode,
    }
    if max_pool:
        kwargs["dilation"] = dilation
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
        kwargs["divisor_override"] = draw(st.sampled_from([None, None, 1, 5]))
    return x_shape, kwargs, draw(st.integers(0, 2**32 - 1))


def _torch_or_finite_differences(backend, fn, name, x, kwargs, dx, dy) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        check_vjp_finite_differences(backend, fn, [x], kwargs, wrt=(0,))
        return
    _, (expected_dx,) = torch_vjp(_torch_fn(name), [x], dy, wrt=(0,), kwargs=kwargs)
    assert_close(dx, expected_dx)


@given(config=window_configs(max_pool=True))
def test_max_random_configurations(backend: BackendCase, config) -> None:
    x_shape, kwargs, seed = config
    x = np.random.default_rng(seed).normal(size=x_shape)
    try:
        expected_y, expected_indices = _max_loops(x, kwargs)
    except AssertionError:
        assume(False)  # a window wholly in the padding (tested on its own above)
    (y, indices), pullback = F.vjp(F.max_pool2d, backend.asarray(x), **kwargs, return_indices=True)
    assert_close(y, expected_y)
    np.testing.assert_array_equal(xpnet.to_numpy(indices), expected_indices)
    dy = random_cotangent(y.shape, seed=seed % 1000)
    (dx,) = pullback(backend.asarray(dy))
    assert_close(dx, _max_grad_loops(x, expected_indices, dy))
    _torch_or_finite_differences(backend, F.max_pool2d, "max_pool2d", x, kwargs, dx, dy)


@given(config=window_configs(max_pool=False))
def test_avg_random_configurations(backend: BackendCase, config) -> None:
    x_shape, kwargs, seed = config
    x = np.random.default_rng(seed).normal(size=x_shape)
    y, pullback = F.vjp(F.avg_pool2d, backend.asarray(x), **kwargs)
    assert_close(y, _avg_loops(x, kwargs))
    dy = random_cotangent(y.shape, seed=seed % 1000)
    (dx,) = pullback(backend.asarray(dy))
    _torch_or_finite_differences(backend, F.avg_pool2d, "avg_pool2d", x, kwargs, dx, dy)


@given(
    height=st.integers(1, 7),
    width=st.integers(1, 7),
    out_h=st.one_of(st.none(), st.integers(1, 8)),
    out_w=st.one_of(st.none(), st.integers(1, 8)),
    seed=st.integers(0, 2**32 - 1),
)
def test_adaptive_random_configurations(backend, height, width, out_h, out_w, seed) -> None:
    x = np.random.default_rng(seed).normal(size=(2, 2, height, width))
    y, pullback = F.vjp(F.adaptive_avg_pool2d, backend.asarray(x), (out_h, out_w))
    assert_close(y, _adaptive_loops(x, (out_h, out_w)))
    dy = random_cotangent(y.shape, seed=seed % 1000)
    (dx, _) = pullback(backend.asarray(dy))
    _, (expected_dx,) = torch_vjp(
        _torch_fn("adaptive_avg_pool2d"), [x, (out_h, out_w)], dy, wrt=(0,)
    )
    assert_close(dx, expected_dx)


# --- errors ------------------------------------------------------------------------------------


def _input(backend: BackendCase, shape=(1, 2, 6, 6), dtype: str | None = None) -> Any:
    return backend.asarray(np.random.default_rng(0).normal(size=shape), dtype)


def _escape(message: str) -> str:
    return message.replace("(", r"\(").replace(")", r"\)")


WINDOW_ERRORS = [
    ({"kernel_size": 0}, ValueError, "kernel_size: expected positive values, got 0"),
    ({"kernel_size": 1.5}, TypeError, "kernel_size: expected an int or a pair of ints"),
    ({"kernel_size": 2, "stride": (1, 0)}, ValueError, "stride: expected positive values"),
    ({"kernel_size": 2, "padding": -1}, ValueError, "padding: expected non-negative values"),
    (
        {"kernel_size": 3, "padding": (1, 2)},
        ValueError,
        "padding: expected at most half of kernel_size on each axis (as torch requires), "
        "got padding (1, 2) with kernel_size 3",
    ),
    (
        {"kernel_size": (7, 2)},
        ValueError,
        "kernel_size: window of extent 7 (kernel 7, dilation 1) is larger than the padded "
        "input (6, from input size 6 and padding 0)",
    ),
]


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize(("kwargs", "error", "message"), WINDOW_ERRORS)
def test_bad_window_arguments_name_the_argument(backend, op, kwargs, error, message) -> None:
    with pytest.raises(error, match=_escape(message)):
        getattr(F, op)(_input(backend), **kwargs)


def test_max_pool_specific_errors(backend) -> None:
    x = _input(backend)
    with pytest.raises(ValueError, match="dilation: expected positive values"):
        F.max_pool2d(x, 2, dilation=0)
    with pytest.raises(ValueError, match=_escape("window of extent 7 (kernel 4, dilation 2)")):
        F.max_pool2d(x, (2, 4), dilation=2)
    F.max_pool2d(x, (2, 4), dilation=2, padding=(0, 1))  # fits once padded


@pytest.mark.parametrize(
    ("divisor", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_avg_pool_rejects_bad_divisor(backend, divisor, error) -> None:
    with pytest.raises(error, match="divisor_override: expected a non-zero int or None, got"):
        F.avg_pool2d(_input(backend), 2, divisor_override=divisor)


@pytest.mark.parametrize(
    ("output_size", "error"),
    [
        (-1, ValueError),
        ((2, -1), ValueError),
        ((2, 2, 2), TypeError),
        ("2", TypeError),
        ((2, 1.5), TypeError),
        (True, TypeError),
    ],
)
def test_adaptive_rejects_bad_output_size(backend, output_size, error) -> None:
    with pytest.raises(error, match="output_size: expected an int or a pair of non-negative ints"):
        F.adaptive_avg_pool2d(_input(backend), output_size)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: F.max_pool2d(x, 2),
        lambda x: F.avg_pool2d(x, 2),
        lambda x: F.adaptive_avg_pool2d(x, 2),
    ],
)
def test_bad_inputs_name_the_argument(backend, call) -> None:
    message = r"input: expected a 3-D or 4-D array .* got shape \(6, 6\)"
    with pytest.raises(ValueError, match=message):
        call(_input(backend, (6, 6)))
    with pytest.raises(TypeError, match="input: expected a floating-point array"):
        call(backend.asarray(np.ones((1, 2, 6, 6), dtype=np.int64)))
    with pytest.raises(TypeError, match="input: expected an array, got list"):
        call([[[1.0, 2.0], [3.0, 4.0]]])


def test_adaptive_rejects_empty_planes(backend) -> None:
    with pytest.raises(ValueError, match=r"input: expected non-empty spatial axes"):
        F.adaptive_avg_pool2d(_input(backend, (1, 2, 0, 3)), 2)
