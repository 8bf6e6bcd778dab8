"""conv2d: forward against plain loops, pullback against finite differences and torch."""

from __future__ import annotations

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
from reference_conv import conv2d_loops, convolve2d_single

WALKTHROUGH_IMAGE = [
    [1, 2, 3, 0, 1],
    [4, 5, 6, 1, 2],
    [7, 8, 9, 2, 3],
    [1, 2, 3, 4, 5],
    [6, 7, 8, 5, 6],
]
EDGE_KERNEL = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]


def test_walkthrough_reference_agrees_with_its_published_result() -> None:
    # The oracle itself, checked against the walkthrough's numbers.
    result = convolve2d_single(np.array(WALKTHROUGH_IMAGE, float), np.array(EDGE_KERNEL, float))
    np.testing.assert_array_equal(result, [[-6, 12, 12], [-6, 8, 8], [-6, 6, 6]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_walkthrough_example(backend: BackendCase, dtype: str) -> None:
    image = backend.asarray(np.array(WALKTHROUGH_IMAGE)[None, None], dtype=dtype)
    kernel = backend.asarray(np.array(EDGE_KERNEL)[None, None], dtype=dtype)
    features = F.conv2d(image, kernel)
    backend.check_like(features, image)
    assert xpnet.to_numpy(features)[0, 0].tolist() == [[-6, 12, 12], [-6, 8, 8], [-6, 6, 6]]
    pooled = F.max_pool2d(F.relu(features), 2)
    backend.check_like(pooled, image)
    assert xpnet.to_numpy(pooled).tolist() == [[[[12]]]]


CONFIGS = [
    # x shape, w shape, kwargs, pads the loop reference should use
    ((2, 3, 7, 6), (4, 3, 3, 3), {}, (0, 0, 0, 0)),
    ((2, 3, 7, 6), (4, 3, 3, 3), {"stride": 2, "padding": 1}, (1, 1, 1, 1)),
    ((1, 4, 9, 8), (6, 2, 2, 3), {"stride": (2, 1), "padding": (0, 2), "groups": 2}, (0, 0, 2, 2)),
    ((2, 2, 9, 9), (3, 2, 3, 2), {"dilation": (2, 3), "padding": 2}, (2, 2, 2, 2)),
    ((1, 4, 6, 7), (4, 1, 3, 3), {"groups": 4, "padding": "same"}, (1, 1, 1, 1)),
    ((1, 2, 6, 7), (2, 2, 2, 4), {"padding": "same"}, (0, 1, 1, 2)),
    ((2, 3, 5, 5), (2, 3, 1, 1), {"stride": 3}, (0, 0, 0, 0)),
    ((1, 1, 4, 4), (1, 1, 4, 4), {"padding": "valid"}, (0, 0, 0, 0)),
    # Wide enough for the flat (shifted-row) columns of stride 1, with padding and dilation.
    ((2, 3, 5, 18), (4, 3, 3, 3), {"padding": 1}, (1, 1, 1, 1)),
    ((1, 2, 4, 48), (3, 2, 2, 4), {"padding": "same", "dilation": (1, 2)}, (0, 1, 3, 3)),
    # Depthwise with a channel multiplier, stride 1 (flat) and 2.
    ((2, 3, 6, 5), (6, 1, 3, 2), {"groups": 3, "padding": (1, 2)}, (1, 1, 2, 2)),
    ((2, 3, 7, 6), (6, 1, 3, 3), {"groups": 3, "stride": 2, "padding": 1}, (1, 1, 1, 1)),
]


def _loop_kwargs(kwargs: dict, pads: tuple[int, int, int, int]) -> dict:
    def pair(v: int | tuple[int, int]) -> tuple[int, int]:
        return (v, v) if isinstance(v, int) else v

    return {
        "stride": pair(kwargs.get("stride", 1)),
        "pads": pads,
        "dilation": pair(kwargs.get("dilation", 1)),
        "groups": kwargs.get("groups", 1),
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs", "pads"), CONFIGS)
def test_forward_matches_loops(backend, dtype, x_shape, w_shape, kwargs, pads) -> None:
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    xb, wb, bb = (backend.asarray(a, dtype) for a in (x, w, b))
    y = F.conv2d(xb, wb, bb, **kwargs)
    backend.check_like(y, xb)
    assert_close(y, conv2d_loops(x, w, b, **_loop_kwargs(kwargs, pads)), **tolerance(dtype))


@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs", "pads"), CONFIGS)
def test_pullback_finite_differences(backend, x_shape, w_shape, kwargs, pads) -> None:
    rng = np.random.default_rng(1)
    args = [rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])]
    check_vjp_finite_differences(backend, F.conv2d, args, kwargs, wrt=(0, 1, 2))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs", "pads"), CONFIGS)
def test_pullback_matches_torch(backend, dtype, x_shape, w_shape, kwargs, pads) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    xb, wb, bb = (backend.asarray(a, dtype) for a in (x, w, b))
    y, pullback = F.vjp(F.conv2d, xb, wb, bb, **kwargs)
    dy = random_cotangent(y.shape)
    grads = pullback(backend.asarray(dy, dtype))
    expected_y, expected = torch_vjp(
        torch.nn.functional.conv2d, [x, w, b], dy, wrt=(0, 1, 2), kwargs=kwargs
    )
    assert_close(y, expected_y, **tolerance(dtype))
    for grad, want, arg in zip(grads, expected, (xb, wb, bb), strict=True):
        backend.check_like(grad, arg)
        assert_close(grad, want, **tolerance(dtype))


def _why_not(strategy: str, x_shape: tuple, w_shape: tuple, kwargs: dict) -> str | None:
    """Independently of the code under test: which strategies cannot compute a config."""
    groups = kwargs.get("groups", 1)
    if strategy == "depthwise" and not (w_shape[1] == 1 and groups > 1):
        return "needs one input channel per group"
    return None


@pytest.mark.parametrize("strategy", ["flat", "strided", "gather", "depthwise"])
@pytest.mark.parametrize(("x_shape", "w_shape", "kwargs", "pads"), CONFIGS)
def test_every_strategy_matches_loops_and_torch(
    backend, strategy, x_shape, w_shape, kwargs, pads
) -> None:
    from xpnet import config

    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    xb, wb, bb = (backend.asarray(a) for a in (x, w, b))
    why = _why_not(strategy, x_shape, w_shape, kwargs)
    with config.conv_strategy(strategy):
        if why is not None:
            with pytest.raises(ValueError, match=f"conv strategy '{strategy}' cannot compute"):
                F.conv2d(xb, wb, bb, **kwargs)
            return
        y, pullback = F.vjp(F.conv2d, xb, wb, bb, **kwargs)
        dy = random_cotangent(y.shape, seed=13)
        grads = pullback(backend.asarray(dy))
    assert_close(y, conv2d_loops(x, w, b, **_loop_kwargs(kwargs, pads)))
    _, expected = torch_vjp(torch.nn.functional.conv2d, [x, w, b], dy, wrt=(0, 1, 2), kwargs=kwargs)
    for grad, want, arg in zip(grads, expected, (xb, wb, bb), strict=True):
        backend.check_like(grad, arg)
        assert_close(grad, want)


@pytest.mark.parametrize("budget", [1, 5000])
@pytest.mark.parametrize("groups", [1, 2])
def test_gather_strategy_in_chunks_matches_loops(backend, budget, groups) -> None:
    # Chunks of one image (budget 1) and of two: the per-chunk gathers, the transposed
    # gather of the input gradient and the summed weight gradient must join up exactly.
    from xpnet import config

    rng = np.random.default_rng(14)
    x, w, b = (
        rng.normal(size=(5, 4, 6, 7)),
        rng.normal(size=(4, 4 // groups, 3, 3)),
        rng.normal(size=4),
    )
    kwargs = {"stride": (2, 1), "padding": 1, "groups": groups}
    xb, wb, bb = (backend.asarray(a) for a in (x, w, b))
    with config.conv_strategy("gather"):
        y, pullback = F.vjp(F.conv2d, xb, wb, bb, **kwargs)
        dy = random_cotangent(y.shape, seed=15)
        whole = pullback(backend.asarray(dy))
        with config.workspace(budget):
            y_chunked, chunked_pullback = F.vjp(F.conv2d, xb, wb, bb, **kwargs)
            chunked = chunked_pullback(backend.asarray(dy))
    want = conv2d_loops(x, w, b, (2, 1), (1, 1, 1, 1), groups=groups)
    assert_close(y, want)
    assert_close(y_chunked, want)
    _, expected = torch_vjp(
        __import__("torch").nn.functional.conv2d, [x, w, b], dy, wrt=(0, 1, 2), kwargs=kwargs
    )
    for got, unchunked, reference in zip(chunked, whole, expected, strict=True):
        assert_close(got, reference)
        assert_close(unchunked, reference)


def test_gpu_profile_chooses_the_gather_strategy_and_cpu_the_layouts(backend) -> None:
    from xpnet import config
    from xpnet.backends import CPU_PROFILE, GPU_PROFILE, assume_device_profile
    from xpnet.functional import _numba
    from xpnet.functional.conv._plan import plan

    x, w = backend.asarray(np.ones((2, 3, 8, 9))), backend.asarray(np.ones((4, 3, 3, 3)))
    depthwise = backend.asarray(np.ones((3, 1, 3, 3)))
    with assume_device_profile(GPU_PROFILE):
        assert plan(x, w, None, 1, 1, 1, 1).strategy == "gather"
        assert plan(x, depthwise, None, 1, 1, 1, 3).strategy == "gather"
    with assume_device_profile(CPU_PROFILE):
        # NumPy with Numba: the compiled columns, but for one input channel per group.
        compiled = backend.name.startswith("numpy") and _numba.available()
        assert plan(x, w, None, 2, 1, 1, 1).strategy == ("compiled" if compiled else "flat")
        # Thin (3 -> 4 channels) at stride 1, directly; 3 -> 9 (27 > 24) by columns.
        assert plan(x, w, None, 1, 1, 1, 1).strategy == ("compiled_direct" if compiled else "flat")
        wider = backend.asarray(np.ones((9, 3, 3, 3)))
        assert plan(x, wider, None, 1, 1, 1, 1).strategy == ("compiled" if compiled else "flat")
        expected = "compiled_depthwise" if compiled else "depthwise"
        assert plan(x, depthwise, None, 1, 1, 1, 3).strategy == expected
    with assume_device_profile(CPU_PROFILE), config.native_kernels(False):
        # Stride 2 at 9 px: phases 6 wide for 5 outputs (1/5 wrapped), polyphase flat.
        assert plan(x, w, None, 2, 1, 1, 1).strategy == "flat"
        narrow = backend.asarray(np.ones((2, 3, 8, 5)))  # phases 4 wide for 3 outputs
        assert plan(narrow, w, None, 2, 1, 1, 1).strategy == "strided"
        assert plan(x, depthwise, None, 1, 1, 1, 3).strategy == "depthwise"
        wide = backend.asarray(np.ones((2, 3, 8, 40)))
        assert plan(wide, w, None, 1, 1, 1, 1).strategy == "flat"


def test_conv_strategy_rejects_unknown_names() -> None:
    from xpnet import config

    with pytest.raises(ValueError, match="conv strategy: expected one of"):
        with config.conv_strategy("winograd"):
            pass


def test_unbatched_input(backend: BackendCase) -> None:
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(2, 5, 5)), rng.normal(size=(3, 2, 3, 3))
    y, pullback = F.vjp(F.conv2d, backend.asarray(x), backend.asarray(w), None, 1, 1)
    assert_close(y, conv2d_loops(x[None], w, pads=(1, 1, 1, 1))[0])
    dy = random_cotangent(y.shape)
    dx, dw, db, dstride, dpadding = pullback(backend.asarray(dy))
    assert db is None and dstride is None and dpadding is None
    _, (want_dx, want_dw) = torch_vjp(
        lambda a, b: __import__("torch").nn.functional.conv2d(a, b, padding=1),
        [x, w],
        dy,
        wrt=(0, 1),
    )
    assert_close(dx, want_dx)
    assert_close(dw, want_dw)


@st.composite
def conv_configs(draw: st.DrawFn) -> tuple:
    groups = draw(st.integers(1, 3))
    in_per_group = draw(st.integers(1, 2))
    out_per_group = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    min_h = dilation[0] * (kh - 1) + 1 - 2 * padding[0]
    min_w = dilation[1] * (kw - 1) + 1 - 2 * padding[1]
    h = draw(st.integers(max(1, min_h), max(1, min_h) + 5))
    w = draw(st.integers(max(1, min_w), max(1, min_w) + 5))
    batch = draw(st.integers(1, 2))
    x_shape = (batch, groups * in_per_group, h, w)
    w_shape = (groups * out_per_group, in_per_group, kh, kw)
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return x_shape, w_shape, kwargs, draw(st.integers(0, 2**32 - 1))


@given(config=conv_configs())
def test_random_configurations_against_loops_and_torch(backend: BackendCase, config) -> None:
    x_shape, w_shape, kwargs, seed = config
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    xb, wb, bb = (backend.asarray(a) for a in (x, w, b))
    y, pullback = F.vjp(F.conv2d, xb, wb, bb, **kwargs)
    ph, pw = kwargs["padding"]
    reference = conv2d_loops(
        x, w, b, kwargs["stride"], (ph, ph, pw, pw), kwargs["dilation"], kwargs["groups"]
    )
    assert_close(y, reference)
    dy = random_cotangent(y.shape, seed=seed % 1000)
    grads = pullback(backend.asarray(dy))
    try:
        import torch
    except ImportError:
        check_vjp_finite_differences(backend, F.conv2d, [x, w, b], kwargs, wrt=(0, 1, 2))
        return
    _, expected = torch_vjp(torch.nn.functional.conv2d, [x, w, b], dy, wrt=(0, 1, 2), kwargs=kwargs)
    for grad, want in zip(grads, expected, strict=True):
        assert_close(grad, want)


def _arrays(backend: BackendCase, x_shape=(1, 4, 6, 6), w_shape=(2, 4, 3, 3)):
    rng = np.random.default_rng(0)
    return backend.asarray(rng.normal(size=x_shape)), backend.asarray(rng.normal(size=w_shape))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stride": 0}, ValueError, "stride: expected positive"),
        ({"dilation": (1, -1)}, ValueError, "dilation: expected positive"),
        ({"padding": -1}, ValueError, "padding: expected non-negative"),
        ({"padding": "full"}, ValueError, "padding: expected an int, a pair, 'valid' or 'same'"),
        ({"padding": "same", "stride": 2}, ValueError, "'same' needs stride 1"),
        ({"groups": 3}, ValueError, "groups: input has 4 channels, not divisible by groups=3"),
        ({"stride": 1.5}, TypeError, "stride: expected an int or a pair of ints"),
    ],
)
def test_bad_arguments_name_the_argument(backend, kwargs, error, message) -> None:
    x, w = _arrays(backend)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        F.conv2d(x, w, **kwargs)


def test_bad_shapes_name_the_argument(backend: BackendCase) -> None:
    x, w = _arrays(backend)
    with pytest.raises(ValueError, match=r"input: expected a 3-D or 4-D array"):
        F.conv2d(x[0, 0, ...], w)
    with pytest.raises(ValueError, match=r"weight: expected a 4-D array"):
        F.conv2d(x, w[0, ...])
    _, wrong = _arrays(backend, w_shape=(2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"weight: expects 3 input channels .* input has 4"):
        F.conv2d(x, wrong)
    _, grouped = _arrays(backend, w_shape=(2, 1, 3, 3))
    with pytest.raises(
        ValueError, match=r"weight: expects 2 input channels \(1 per group x groups=2\)"
    ):
        F.conv2d(x, grouped, groups=2)
    _, big = _arrays(backend, w_shape=(2, 4, 7, 3))
    with pytest.raises(
        ValueError, match=r"weight: kernel of extent 7 .* larger than the padded input \(6"
    ):
        F.conv2d(x, big)
    F.conv2d(x, big, padding=(1, 0))  # fits once padded
    with pytest.raises(ValueError, match=r"bias: expected shape \(2,\)"):
        F.conv2d(x, w, backend.asarray(np.zeros(3)))


def test_dtype_errors(backend: BackendCase) -> None:
    x, w = _arrays(backend)
    with pytest.raises(TypeError, match="input: expected a floating-point array"):
        F.conv2d(backend.asarray(np.ones((1, 4, 6, 6), dtype=np.int64)), w)
    with pytest.raises(TypeError, match="weight: expected dtype .*float64.* got .*float32"):
        F.conv2d(x, backend.asarray(np.ones((2, 4, 3, 3)), "float32"))


def test_mixed_namespaces_are_rejected(backend: BackendCase) -> None:
    x, _ = _arrays(backend)
    # NumPy is the other library for every backend but NumPy's own, which gets torch's or
    # array-api-strict's arrays.
    if backend.name.startswith("numpy"):
        other = next(n for n in ("array_api_strict", "torch") if n in xpnet.available_backends())
        with xpnet.use_backend(other):
            foreign = xpnet.asarray(np.ones((2, 4, 3, 3)), dtype="float64")
    else:
        foreign = np.ones((2, 4, 3, 3))
    with pytest.raises(TypeError, match=r"weight: expected an array of the same library as input"):
        F.conv2d(x, foreign)


@pytest.mark.parametrize("budget", [1, 3000, 7000, 20000])
def test_workspace_budget_chunks_the_batch_with_the_same_results(backend, budget) -> None:
    from xpnet import config

    rng = np.random.default_rng(5)
    x, w, b = rng.normal(size=(5, 2, 6, 7)), rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4)
    kwargs = {"stride": (2, 1), "padding": 1}
    xb, wb, bb = (backend.asarray(a) for a in (x, w, b))
    dy = random_cotangent((5, 4, 3, 7))
    y, pullback = F.vjp(F.conv2d, xb, wb, bb, **kwargs)
    grads = pullback(backend.asarray(dy))
    # One image needs 2 * 9 * 21 * 8 = 3024 bytes of columns plus 2 * 2 * 8 * 9 * 8 = 2304
    # of staging copies: these budgets give forward chunks of 1 (even below one image), 1,
    # 1 and 3 images, and backward chunks (two column buffers) of 1, 1, 1 and 2.
    with config.workspace(budget):
        y_chunked, chunked_pullback = F.vjp(F.conv2d, xb, wb, bb, **kwargs)
        chunked = chunked_pullback(backend.asarray(dy))
    assert_close(y_chunked, conv2d_loops(x, w, b, (2, 1), (1, 1, 1, 1)))
    assert_close(y_chunked, to_numpy(y))
    for got, want in zip(chunked, grads, strict=True):
        assert_close(got, to_numpy(want))


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs"),
    [
        ((5, 2, 4, 20), (3, 2, 3, 3), {"padding": 1}),  # flat columns and flat col2im
        ((5, 2, 4, 6), (4, 1, 3, 3), {"padding": 1, "groups": 2}),  # depthwise
    ],
)
def test_chunked_stride_one_paths_match_loops(backend, x_shape, w_shape, kwargs) -> None:
    from xpnet import config

    rng = np.random.default_rng(7)
    x, w, b = rng.normal(size=x_shape), rng.normal(size=w_shape), rng.normal(size=w_shape[0])
    xb, wb, bb = (backend.asarray(a) for a in (x, w, b))
    y, pullback = F.vjp(F.conv2d, xb, wb, bb, **kwargs)
    dy = random_cotangent(y.shape)
    grads = pullback(backend.asarray(dy))
    with config.workspace(1):  # one image per chunk, columns rebuilt in the pullback
        y_chunked, chunked_pullback = F.vjp(F.conv2d, xb, wb, bb, **kwargs)
        chunked = chunked_pullback(backend.asarray(dy))
    pads = (1, 1, 1, 1)
    want = conv2d_loops(x, w, b, pads=pads, groups=kwargs.get("groups", 1))
    assert_close(y, want)
    assert_close(y_chunked, want)
    _, expected = torch_vjp(
        __import__("torch").nn.functional.conv2d, [x, w, b], dy, wrt=(0, 1, 2), kwargs=kwargs
    )
    for got, unchunked, reference in zip(chunked, grads, expected, strict=True):
        assert_close(got, reference)
        assert_close(unchunked, reference)


def test_workspace_rejects_bad_sizes() -> None:
    from xpnet import config

    with pytest.raises(ValueError, match="workspace bytes: expected a positive int"):
        config.set_workspace_bytes(0)
    assert config.get_workspace_bytes() == config.DEFAULT_WORKSPACE_BYTES


@pytest.mark.parametrize("argnums", [(0,), (1,), (2,), (1, 2), (0, 2), ()])
def test_argnums_skips_unrequested_gradients(backend, argnums) -> None:
    rng = np.random.default_rng(6)
    x, w, b = rng.normal(size=(3, 4, 7, 6)), rng.normal(size=(2, 2, 3, 2)), rng.normal(size=2)
    kwargs = {"stride": 2, "padding": 1, "groups": 2}
    args = [backend.asarray(a) for a in (x, w, b)]
    y, pullback = F.vjp(F.conv2d, *args, argnums=argnums, **kwargs)
    dy = random_cotangent(y.shape)
    grads = pullback(backend.asarray(dy))
    _, expected = torch_vjp(
        __import__("torch").nn.functional.conv2d, [x, w, b], dy, wrt=(0, 1, 2), kwargs=kwargs
    )
    for position, (grad, want) in enumerate(zip(grads, expected, strict=True)):
        if position in argnums:
            assert_close(grad, want)
        else:
            assert grad is None


def test_argnums_outside_the_arguments(backend: BackendCase) -> None:
    x, w = _arrays(backend)
    with pytest.raises(ValueError, match=r"argnums: positions \[2\] are outside the 2 arguments"):
        F.vjp(F.conv2d, x, w, argnums=(0, 2))


@pytest.mark.parametrize("budget_mib", [4, 16])
@pytest.mark.parametrize(
    ("strategy", "stride", "groups"),
    [
        ("flat", 1, 1),
        ("flat", 2, 1),
        ("strided", 1, 1),
        ("strided", 2, 1),
        ("gather", 1, 1),
        ("gather", 2, 1),
        ("depthwise", 1, 32),
        ("depthwise", 2, 32),
    ],
)
def test_workspace_bounds_the_temporaries(strategy, stride, groups, budget_mib) -> None:
    # The promise of xpnet.config.workspace: forward + pullback never hold more than the
    # budget besides their results (y, dx, dw), at a batch whose results are 3 to 12 times
    # the budget (joining the chunks' outputs by concatenation held the output twice).
    # NumPy only: tracemalloc sees NumPy's allocations.
    import tracemalloc

    from xpnet import config

    mib = 2**20
    rng = np.random.default_rng(16)
    with xpnet.use_backend("numpy"), config.conv_strategy(strategy):
        x = xpnet.asarray(rng.standard_normal((512, 32, 28, 28), dtype=np.float32))
        w = xpnet.asarray(rng.standard_normal((32, 32 // groups, 3, 3), dtype=np.float32))
        kwargs = {"stride": stride, "padding": 1, "groups": groups}
        small, pullback = F.vjp(F.conv2d, x[:2, ...], w, None, **kwargs)
        pullback(xpnet.get_namespace().ones_like(small))  # index tables are kept, not counted
        out = 28 // stride
        dy = xpnet.asarray(rng.standard_normal((512, 32, out, out), dtype=np.float32))
        with config.workspace(budget_mib * mib):
            tracemalloc.start()
            try:
                y, pullback = F.vjp(F.conv2d, x, w, None, **kwargs)
                dx, dw, _ = pullback(dy)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    allowed = budget_mib * mib + y.nbytes + dx.nbytes + dw.nbytes
    assert dx.nbytes >= 3 * budget_mib * mib  # the results dwarf the budget
    assert peak <= allowed, f"peak {peak / mib:.1f} MiB, allowed {allowed / mib:.1f} MiB"
    # The chunks' results landed where they belong: the last images against a batch of
    # their own.
    with xpnet.use_backend("numpy"), config.conv_strategy(strategy):
        tail_y, tail_pullback = F.vjp(F.conv2d, x[-3:, ...], w, None, **kwargs)
        tail_dx = tail_pullback(dy[-3:, ...])[0]
    assert_close(y[-3:, ...], to_numpy(tail_y), rtol=1e-5, atol=1e-5)
    assert_close(dx[-3:, ...], to_numpy(tail_dx), rtol=1e-5, atol=1e-5)
