"""Native kernels: each against the standard path on the same inputs (forward and every
gradient, float64), and proof that the native path is the one taken where it should be."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import BackendCase, assert_close, random_cotangent, to_numpy
from xpnet.functional import _numba
from xpnet.functional.conv import _native, _plan

# (op, input shape, weight shape, keyword arguments)
CASES = [
    (F.conv2d, (2, 4, 9, 8), (6, 4, 3, 3), {"padding": 1}),
    (F.conv2d, (2, 4, 9, 9), (6, 2, 3, 2), {"stride": 2, "padding": (1, 0), "groups": 2}),
    (F.conv2d, (3, 6, 10, 10), (6, 1, 3, 3), {"dilation": 2, "padding": "same", "groups": 6}),
    (F.conv2d, (4, 9, 9), (5, 4, 1, 1), {}),  # unbatched
    (F.conv1d, (2, 3, 17), (4, 3, 5), {"stride": 3, "padding": 2}),
    (F.conv3d, (2, 2, 5, 6, 7), (3, 2, 3, 2, 3), {"stride": (1, 2, 1), "padding": 1}),
    # Output rows as wide as the input's (NumPy copies each window as one run): dilated,
    # asymmetric (an even kernel), and 1-D.
    (F.conv2d, (2, 5, 7, 6), (6, 5, 3, 3), {"padding": 2, "dilation": 2}),
    (F.conv2d, (2, 5, 6, 7), (6, 5, 2, 4), {"padding": "same"}),
    (F.conv1d, (2, 5, 9), (6, 5, 3), {"padding": "same"}),
    (F.conv_transpose2d, (2, 4, 5, 6), (4, 3, 3, 3), {"stride": 2, "padding": 1,
                                                     "output_padding": 1}),
    (F.conv_transpose1d, (2, 4, 7), (4, 2, 3), {"stride": 2, "groups": 2}),
    (F.conv_transpose3d, (1, 2, 3, 4, 3), (2, 3, 2, 2, 2), {"stride": 2}),
    # Depthwise (JAX: sums over the kernel offsets): asymmetric padding and dilation, a
    # channel multiplier and a stride, 1-D and 3-D, and transposed.
    (F.conv2d, (2, 2, 9, 8), (4, 1, 3, 2), {"padding": "same", "dilation": (1, 2),
                                            "groups": 2}),
    (F.conv2d, (2, 3, 9, 8), (6, 1, 3, 3), {"stride": (2, 1), "padding": 1, "groups": 3}),
    (F.conv1d, (2, 4, 12), (4, 1, 3), {"stride": 2, "dilation": 2, "groups": 4}),
    (F.conv3d, (1, 2, 4, 5, 6), (2, 1, 2, 3, 2), {"padding": (1, 0, 1), "groups": 2}),
    (F.conv_transpose2d, (2, 3, 4, 5), (3, 1, 3, 3), {"stride": 2, "groups": 3}),
    # Thin (NumPy computes them directly): asymmetric padding, and transposed.
    (F.conv2d, (2, 2, 7, 8), (3, 2, 2, 3), {"padding": "same"}),
    (F.conv_transpose2d, (2, 3, 5, 6), (3, 2, 3, 3), {"padding": 1}),
]  # fmt: skip


#: The backends with a native convolution, and the pass that computes it there.
NATIVE = {"torch": _native.TorchConvPass, "jax": _native.JaxConvPass}


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The native passes that ran, by name."""
    calls: list[str] = []
    for kind in (*NATIVE.values(), _native.JaxTapsConvPass):
        for name in ("forward", "input_grad", "weight_grad", "gradients"):
            if name not in vars(kind):
                continue  # inherited: counted where it is defined
            original = getattr(kind, name)

            def wrapped(
                self: Any, *args: Any, _name: str = name, _f: Any = original, **kwargs: Any
            ) -> Any:
                calls.append(_name)
                return _f(self, *args, **kwargs)

            monkeypatch.setattr(kind, name, wrapped)
    return calls


@pytest.fixture
def kernel_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The compiled NumPy kernels that ran (``im2col``, ``col2im``), by name."""
    calls: list[str] = []
    original = _numba.run_shared

    def wrapped(kernel: Any, *args: Any) -> None:
        calls.append(kernel.__name__)
        original(kernel, *args)

    monkeypatch.setattr(_numba, "run_shared", wrapped)
    return calls


#: The compiled NumPy kernels a convolution's forward and pullback run.
COLUMNS = ["col2im", "im2col"]
DEPTHWISE = ["depthwise_forward", "depthwise_input_grad", "depthwise_weight_grad"]
DIRECT = ["col2im", "direct_forward", "direct_weight_grad"]  # the input gradient by columns


def _thin(w_shape: Any, kwargs: Any) -> bool:
    """Whether the 2-D pass of this convolution is thin: one group, stride and dilation 1
    across its two axes, and few channels (a 3-D pass stacks the depth taps beside them)."""

    def last_two(name: str) -> tuple[int, ...]:
        value = kwargs.get(name, 1)
        return ((value,) * (len(w_shape) - 2) if isinstance(value, int) else value)[-2:]

    channels = w_shape[0] * w_shape[1] * (w_shape[2] if len(w_shape) == 5 else 1)
    return (
        kwargs.get("groups", 1) == 1
        and set(last_two("stride")) == set(last_two("dilation")) == {1}
        and channels <= _plan.MAX_DIRECT_CHANNELS
    )


def _compiled_kernels(backend: BackendCase, w_shape: Any, kwargs: Any, op: Any) -> list[str]:
    """The compiled kernels that should run on this backend: none without NumPy and
    Numba, else the direct depthwise passes for one input channel per group in the 2-D
    pass (a 3-D pass stacks the depth taps beside the channels), the direct thin passes
    (:func:`_thin`), else the columns' (and the biased layout of a 2-D product)."""
    if not (backend.name.startswith("numpy") and _numba.available()):
        return []
    groups = kwargs.get("groups", 1)
    per_group = w_shape[0] // groups if "transpose" in op.__name__ else w_shape[1]
    if len(w_shape) == 5:
        per_group *= w_shape[2]
    if per_group == 1 and groups > 1:
        return DEPTHWISE
    if _thin(w_shape, kwargs):
        return DIRECT
    # A 2-D convolution's bias goes in with the product's layout copy (every case has one).
    return sorted([*COLUMNS, "lay_out_biased"]) if op is F.conv2d else COLUMNS


def _run(op: Any, x: np.ndarray, w: np.ndarray, b: np.ndarray, kwargs: dict[str, Any]) -> list[Any]:
    y, pullback = F.vjp(op, xpnet.asarray(x), xpnet.asarray(w), xpnet.asarray(b), **kwargs)
    return [y, *pullback(xpnet.asarray(random_cotangent(tuple(y.shape))))]


@pytest.mark.parametrize(("op", "x_shape", "w_shape", "kwargs"), CASES)
def test_native_convolution_equals_the_standard_path(
    backend: BackendCase,
    spy: list[str],
    kernel_spy: list[str],
    op: Any,
    x_shape: Any,
    w_shape: Any,
    kwargs: Any,
) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out_channels = (
        w_shape[1] * kwargs.get("groups", 1) if "transpose" in op.__name__ else w_shape[0]
    )
    b = rng.standard_normal(out_channels)
    native = _run(op, x, w, b, kwargs)
    taken, compiled = list(spy), list(kernel_spy)
    with xpnet.config.native_kernels(False):
        standard = _run(op, x, w, b, kwargs)
    assert len(spy) == len(taken)  # the switch keeps the native passes out
    assert len(kernel_spy) == len(compiled)  # and the compiled kernels
    assert sorted(set(compiled)) == _compiled_kernels(backend, w_shape, kwargs, op), compiled
    for got, expected in zip(native, standard, strict=True):
        assert_close(got, to_numpy(expected), rtol=1e-10, atol=1e-12)
    if backend.name in NATIVE and (backend.name == "jax" or kwargs.get("padding") != "same"):
        # The forward, the input gradient and the weight gradient all ran natively: on
        # torch a convolution's three gradients in one call (a transposed one's pullback
        # is a convolution forward and a weight gradient).
        both = ["forward", "input_grad", "weight_grad"]
        one_call = backend.name == "torch" and "transpose" not in op.__name__
        assert sorted(set(taken) - {"gradients"}) == (["forward"] if one_call else both), taken
        assert ("gradients" in taken) == one_call, taken
    elif backend.name not in NATIVE:
        assert taken == []  # no native convolution on this namespace


def test_asymmetric_same_padding(backend: BackendCase, spy: list[str]) -> None:
    x = xpnet.asarray(np.ones((1, 2, 6, 6)))
    w = xpnet.asarray(np.ones((3, 2, 2, 2)))  # an even kernel: 'same' pads 0 before, 1 after
    y = F.conv2d(x, w, padding="same")
    # torch's aten takes one padding per axis (so the standard path runs); lax takes pairs.
    assert tuple(y.shape) == (1, 3, 6, 6)
    assert spy == (["forward"] if backend.name == "jax" else [])
    assert float(to_numpy(y)[0, 0, -1, -1]) == 2.0  # one row and column of padding: 2 of 8


needs_numba = pytest.mark.skipif(
    not _numba.available(), reason="Numba is not installed (the numba extra)"
)


@needs_numba
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["columns", "depthwise", "direct"])
def test_compiled_kernels_shared_among_threads_equal_the_standard_path(
    monkeypatch: pytest.MonkeyPatch, kernel_spy: list[str], batch: int, dtype: str, kind: str
) -> None:
    # Every share as small as one row, image or channel, on three threads: the split
    # (by images for the batch of 5, by channels for the batch of 1) must not change the
    # results. Depthwise with a channel multiplier of 2; direct: thin (4 -> 5 channels).
    monkeypatch.setattr(_numba, "MIN_SHARE", 1)
    monkeypatch.setattr(_numba, "threads", lambda: 3)
    rng = np.random.default_rng(3)
    groups, out_channels = {"columns": (1, 6), "depthwise": (4, 8), "direct": (1, 5)}[kind]
    stride, dilation = ((1, 1), (1, 1)) if kind == "direct" else ((2, 1), (1, 2))
    x = rng.standard_normal((batch, 4, 11, 9)).astype(dtype)
    w = rng.standard_normal((out_channels, 4 // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(out_channels).astype(dtype)

    def run() -> list[Any]:
        y, pullback = F.vjp(F.conv2d, x, w, b, stride, (2, 1), dilation, groups)
        dy = rng.standard_normal(tuple(y.shape)).astype(dtype)
        return [y, *pullback(dy)[:3]]

    with xpnet.use_backend("numpy"):
        rng = np.random.default_rng(4)
        compiled = run()
        rng = np.random.default_rng(4)
        with xpnet.config.native_kernels(False):
            standard = run()
    expected = {"columns": sorted([*COLUMNS, "lay_out_biased"]), "depthwise": DEPTHWISE,
                "direct": DIRECT}[kind]  # fmt: skip
    assert sorted(set(kernel_spy)) == expected
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    for got, expected_value in zip(compiled, standard, strict=True):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, expected_value, rtol=tolerance, atol=tolerance)


@needs_numba
@pytest.mark.parametrize(("out_channels", "kernel"), [(9, "im2col"), (2, "direct_forward")])
def test_compiled_kernels_read_a_strided_input(
    kernel_spy: list[str], out_channels: int, kernel: str
) -> None:
    # A transposed view (not C-contiguous) against the same values laid out afresh, by
    # columns and (a thin convolution) directly.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 3, 8, 2)).transpose(3, 1, 2, 0)  # (2, 3, 8, 9)
    w = rng.standard_normal((out_channels, 3, 3, 3))
    with xpnet.use_backend("numpy"):
        y = F.conv2d(x, w, padding=1)
        with xpnet.config.native_kernels(False):
            expected = F.conv2d(np.ascontiguousarray(x), w, padding=1)
    assert kernel_spy == [kernel]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_numpy_without_numba_takes_the_standard_path(
    monkeypatch: pytest.MonkeyPatch, kernel_spy: list[str]
) -> None:
    from xpnet.functional.conv import _plan

    monkeypatch.setattr(_numba, "load", lambda module: None)  # as without Numba
    x, w = np.ones((2, 3, 8, 8)), np.ones((4, 3, 3, 3))
    with xpnet.use_backend("numpy"):
        assert _plan.plan(x, w, None, 1, 1, 1, 1).strategy == "flat"
        y = F.conv2d(x, w, padding=1)
    assert kernel_spy == []
    assert float(y[0, 0, 0, 0]) == 12.0  # a corner window: 4 of 9 taps on 3 channels


def test_a_kernel_module_that_will_not_load_leaves_the_standard_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Say Numba found nowhere to cache its code: a warning, once, and no compiled kernels.
    monkeypatch.setattr(_numba, "_numba_loads", lambda: True)
    _numba.load.cache_clear()  # the warning comes once per module and process
    missing = "xpnet.functional.conv._no_such_kernels"
    with pytest.warns(RuntimeWarning, match=r"_no_such_kernels are unavailable .* standard path"):
        assert _numba.load(missing) is None
    with xpnet.use_backend("numpy"):
        assert not _numba.applies(xpnet.get_namespace(), kernels=missing)


def test_the_switch_is_checked() -> None:
    with pytest.raises(TypeError, match="native_kernels: expected True or False"):
        with xpnet.config.native_kernels("no"):  # type: ignore[arg-type]
            pass
    assert xpnet.config.get_native_kernels() is True


# (op, input shape, keyword arguments)
POOLS = [
    (F.max_pool2d, (2, 3, 9, 8), {"kernel_size": 3, "stride": 2, "padding": 1}),
    (F.max_pool2d, (3, 8, 8), {"kernel_size": 2, "ceil_mode": True}),
    (F.avg_pool2d, (2, 3, 9, 8), {"kernel_size": 3, "stride": 2, "padding": 1}),
    (F.avg_pool2d, (2, 3, 7, 7), {"kernel_size": 2, "ceil_mode": True,
                                  "count_include_pad": False}),
    (F.avg_pool2d, (1, 2, 6, 6), {"kernel_size": 3, "divisor_override": 4}),
    (F.max_pool1d, (2, 3, 11), {"kernel_size": 3, "stride": 2}),
]  # fmt: skip


@pytest.fixture
def pool_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The native poolings that ran, by op."""
    from xpnet.functional.pooling import _average, _max

    calls: list[str] = []
    for module, name in ((_max, "native_max_pool2d"), (_average, "native_avg_pool2d")):
        original = getattr(module, name)

        def wrapped(*args: Any, _name: str = name, _f: Any = original) -> Any:
            result = _f(*args)
            if result is not None:
                calls.append(_name)
            return result

        monkeypatch.setattr(module, name, wrapped)
    return calls


@pytest.mark.parametrize(("op", "x_shape", "kwargs"), POOLS)
def test_native_pooling_equals_the_standard_path(
    backend: BackendCase, pool_spy: list[str], op: Any, x_shape: Any, kwargs: Any
) -> None:
    x = np.random.default_rng(1).standard_normal(x_shape)

    def run() -> list[Any]:
        y, pullback = F.vjp(op, xpnet.asarray(x), **kwargs)
        return [y, *pullback(xpnet.asarray(random_cotangent(tuple(y.shape))))]

    native = run()
    taken = list(pool_spy)
    with xpnet.config.native_kernels(False):
        standard = run()
    assert len(pool_spy) == len(taken)
    for got, expected in zip(native, standard, strict=True):
        assert_close(got, to_numpy(expected), rtol=1e-12, atol=1e-12)
    assert bool(taken) == (backend.name == "torch"), taken


@pytest.mark.parametrize(("op", "x_shape", "kwargs"), [c for c in POOLS if c[0] is F.max_pool2d])
def test_native_inference_max_pooling_equals_the_standard_path(
    backend: BackendCase, monkeypatch: pytest.MonkeyPatch, op: Any, x_shape: Any, kwargs: Any
) -> None:
    """Max pooling outside a differentiation takes torch's index-free kernel; its output
    is the standard path's, a NaN window included."""
    from xpnet.functional.pooling import _max

    taken = _spy_on_native(monkeypatch, _max, "native_max_pool2d_inference")
    x = np.random.default_rng(4).standard_normal(x_shape)
    x[..., 0, 0] = np.nan
    native = to_numpy(op(xpnet.asarray(x), **kwargs))
    with xpnet.config.native_kernels(False):
        standard = to_numpy(op(xpnet.asarray(x), **kwargs))
    np.testing.assert_array_equal(native, standard)
    assert taken == [backend.name == "torch", False]


def test_native_max_pooling_follows_torch_at_nan() -> None:
    """torch's kernel sends a NaN window's gradient to its last NaN (the standard path: the
    first); on the torch backend xpnet then gives exactly torch's autograd."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(8).normal(size=(1, 1, 4, 4))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    with xpnet.use_backend("torch"):
        _, pullback = F.vjp(F.max_pool2d, xpnet.asarray(x), kernel_size=2)
        (dx,) = pullback(xpnet.asarray(np.ones((1, 1, 2, 2))))
    reference = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(reference, 2).backward(torch.ones(1, 1, 2, 2))
    np.testing.assert_array_equal(to_numpy(dx), reference.grad.numpy())
    assert to_numpy(dx)[0, 0, 1, 0] == 1.0  # the window's second NaN


def _spy_on_native(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[bool]:
    """Replace ``module.name`` (a native-kernel chooser that returns ``None`` where it does
    not apply) by a wrapper recording, per call, whether the native kernel ran."""
    taken: list[bool] = []
    original = getattr(module, name)

    def spy(*args: Any) -> Any:
        result = original(*args)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(module, name, spy)
    return taken


def test_native_relu_pullback_equals_the_standard_path(
    backend: BackendCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """relu's pullback by torch's threshold_backward, against the standard one: zeros at
    and below 0, NaN outputs passing their gradient, NaN and infinite cotangents kept."""
    from xpnet.functional.activations import _rectifiers

    taken = _spy_on_native(monkeypatch, _rectifiers, "native_relu_pullback")
    x = np.random.default_rng(2).standard_normal((3, 4, 5))
    x[0, 0, :3] = [0.0, -0.0, np.nan]
    dy = random_cotangent(x.shape)
    dy[1, 1, :2] = [np.nan, np.inf]
    dy[1, 1, 2:4], x[1, 1, 2:4] = -np.inf, -1.0  # a non-finite cotangent under a zero output

    def run() -> Any:
        _, pullback = F.vjp(F.relu, xpnet.asarray(x))
        return pullback(xpnet.asarray(dy))[0]

    native = to_numpy(run())
    with xpnet.config.native_kernels(False):
        standard = to_numpy(run())
    np.testing.assert_array_equal(native, standard)
    expected = np.where(x <= 0, 0.0, dy)  # the rule, from its definition
    np.testing.assert_array_equal(standard, expected)
    assert taken == [backend.name == "torch", False]


def test_jax_takes_the_tap_sum_for_one_input_channel_per_group() -> None:
    """Depthwise convolutions take :class:`JaxTapsConvPass` on JAX (XLA's convolution is
    slow there); others, a single-channel input included, keep ``lax.conv_general_dilated``."""
    jnp = pytest.importorskip("jax.numpy")
    from xpnet.functional.conv._geometry import check_conv

    def chosen(channels: int, groups: int) -> type:
        x, w = jnp.zeros((2, channels, 8, 8)), jnp.zeros((4, channels // groups, 3, 3))
        return type(_native.native_pass(check_conv(2, x, w, None, 1, 1, 1, groups)))

    assert chosen(4, 4) is _native.JaxTapsConvPass  # depthwise
    assert chosen(1, 1) is _native.JaxConvPass  # one channel in, one group
    assert chosen(4, 2) is _native.JaxConvPass
    assert chosen(4, 1) is _native.JaxConvPass


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_native_cross_entropy_equals_the_standard_path(
    backend: BackendCase, monkeypatch: pytest.MonkeyPatch, reduction: str, weighted: bool
) -> None:
    """Cross-entropy by torch's log-softmax and NLL kernels against the standard loss: the
    loss and the logits' gradient, with class weights and ignored targets."""
    from xpnet.functional.losses import _classes

    taken = _spy_on_native(monkeypatch, _classes, "native_cross_entropy")
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((7, 5)) * 3
    target = np.array([0, 4, 2, -100, 1, 4, 3])  # one ignored (the default ignore_index)
    weight = xpnet.asarray(rng.uniform(0.5, 2.0, 5)) if weighted else None
    cotangent = random_cotangent((7,)) if reduction == "none" else np.float64(0.7)

    def run() -> list[Any]:
        loss, pullback = F.vjp(
            F.cross_entropy,
            xpnet.asarray(logits),
            xpnet.asarray(target),
            weight,
            reduction=reduction,
        )
        return [loss, pullback(xpnet.asarray(cotangent))[0]]

    native = run()
    with xpnet.config.native_kernels(False):
        standard = run()
    for got, expected in zip(native, standard, strict=True):
        assert_close(got, to_numpy(expected), rtol=1e-12, atol=1e-14)
    assert taken == [backend.name == "torch", False]


@needs_numba
@pytest.mark.parametrize(
    ("shape", "affine", "tracked"),
    [((6, 5), True, True), ((3, 4, 7), False, True), ((4, 3, 5, 6), True, False),
     ((2, 3, 2, 3, 4), True, True)],
)  # fmt: skip
def test_compiled_batch_norm_equals_the_standard_path(
    monkeypatch: pytest.MonkeyPatch,
    kernel_spy: list[str],
    shape: tuple[int, ...],
    affine: bool,
    tracked: bool,
) -> None:
    # Training (the batch's statistics), every output and gradient, float64; shares as
    # small as one channel on three threads.
    monkeypatch.setattr(_numba, "MIN_SHARE", 1)
    monkeypatch.setattr(_numba, "threads", lambda: 3)
    rng = np.random.default_rng(5)
    channels = shape[1]
    x = rng.standard_normal(shape) * 3.0 + 2.0
    weight, bias = rng.standard_normal(channels), rng.standard_normal(channels)
    mean, var = rng.standard_normal(channels), rng.uniform(0.5, 2.0, channels)
    dy = rng.standard_normal(shape)

    def run() -> list[Any]:
        def norm(x: Any, weight: Any, bias: Any) -> Any:
            stats = (mean, var) if tracked else (None, None)
            return F.batch_norm(x, *stats, weight, bias, training=True, momentum=0.3)

        parameters = (weight, bias) if affine else (None, None)
        outputs, pullback = F.vjp(norm, x, *parameters)
        zeros = [np.zeros(channels) if tracked else None] * 2
        grads = pullback((dy, *zeros))
        return [o for o in (*outputs, *grads) if o is not None]

    with xpnet.use_backend("numpy"):
        compiled = run()
        with xpnet.config.native_kernels(False):
            standard = run()
    assert kernel_spy == ["forward", "backward"]
    assert len(compiled) == len(standard) == 1 + 2 * tracked + 1 + 2 * affine
    for got, expected in zip(compiled, standard, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@needs_numba
@pytest.mark.parametrize(
    ("shape", "kernel_size"), [((3, 4, 8, 9), 2), ((2, 3, 7, 7), 3), ((4, 5, 6), 2), ((2, 2, 9, 8), (3, 2))]
)  # fmt: skip
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_tiled_max_pooling_equals_the_standard_path(
    monkeypatch: pytest.MonkeyPatch,
    kernel_spy: list[str],
    shape: tuple[int, ...],
    kernel_size: Any,
    dtype: str,
) -> None:
    # Tiling windows with a NaN, an inf, a tie, rows and columns no tile covers (7 and 9
    # pixels), an unbatched input; shares as small as one plane on three threads. The
    # output, the pullback and inference must agree bit for bit.
    monkeypatch.setattr(_numba, "MIN_SHARE", 1)
    monkeypatch.setattr(_numba, "threads", lambda: 3)
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[5], x.flat[17], x.flat[30] = np.nan, np.inf, x.flat[31]

    def run() -> list[Any]:
        y, pullback = F.vjp(lambda a: F.max_pool2d(a, kernel_size), x)
        dy = np.random.default_rng(7).standard_normal(tuple(y.shape)).astype(dtype)
        return [y, pullback(dy)[0], F.max_pool2d(x, kernel_size)]

    with xpnet.use_backend("numpy"):
        compiled = run()
        with xpnet.config.native_kernels(False):
            standard = run()
    assert kernel_spy == ["tiled_max", "tiled_max_pullback", "tiled_max"]
    for got, expected in zip(compiled, standard, strict=True):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, expected)
