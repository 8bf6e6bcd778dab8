"""Define-by-run on its own terms: the function form (grad, value_and_grad, argnums,
has_aux, vjp of any function), stop_gradient, the errors that replace wrong gradients, and
random programs (hypothesis) checked against torch autograd."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xpnet
import xpnet.functional as F
from helpers import BackendCase, assert_close, to_numpy
from xpnet import nn
from xpnet.functional import DifferentiationError


def _ns(*arrays: Any) -> Any:
    return array_api_compat.array_namespace(*arrays)


# ------------------------------------------------------------------------- function form


def test_argnums_pytrees_and_aux(backend: BackendCase) -> None:
    def f(params: dict[str, Any], x: Any, scale: float) -> Any:
        xp = _ns(x)
        y = xp.tanh(x @ params["w"] + params["b"][None, :]) * scale
        return xp.sum(y**2), {"y": y}

    rng = np.random.default_rng(0)
    w, b, x = rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(4, 3))
    params = {"w": backend.asarray(w), "b": backend.asarray(b)}
    (value, aux), (grads, dx) = xpnet.value_and_grad(f, argnums=(0, 1), has_aux=True)(
        params, backend.asarray(x), 0.5
    )
    # By hand: y = 0.5 tanh(z), L = sum(y^2), dL/dz = 2 y * 0.5 (1 - tanh^2 z).
    z = x @ w + b
    y = 0.5 * np.tanh(z)
    dz = 2 * y * 0.5 * (1 - np.tanh(z) ** 2)
    assert_close(value, np.sum(y**2))
    assert_close(aux["y"], y)
    assert not xpnet.functional._autodiff.is_tracked(aux["y"])
    assert list(grads) == ["w", "b"]
    assert_close(grads["w"], x.T @ dz)
    assert_close(grads["b"], dz.sum(axis=0))
    assert_close(dx, dz @ w.T)
    only_x = xpnet.grad(f, argnums=1, has_aux=True)(params, backend.asarray(x), 0.5)[0]
    assert_close(only_x, dz @ w.T)


def test_an_input_the_value_does_not_reach_gets_zeros(backend: BackendCase) -> None:
    x = backend.asarray(np.ones(3))
    y = backend.asarray(np.full(2, 2.0))
    gx, gy = xpnet.grad(lambda a, b: _ns(a).sum(a * 3.0), argnums=(0, 1))(x, y)
    assert_close(gx, np.full(3, 3.0))
    assert_close(gy, np.zeros(2))
    backend.check_like(gy, y)


def test_vjp_of_a_module_and_of_a_function(backend: BackendCase) -> None:
    torch = pytest.importorskip("torch")
    xpnet.seed(1)
    block = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype="float64"), nn.Tanh())
    x_host = np.random.default_rng(2).normal(size=(2, 2, 4, 4))
    dy_host = np.random.default_rng(3).normal(size=(2, 3, 4, 4))
    params = dict(block.named_parameters())
    y, pullback = F.vjp(
        lambda p, x: nn.functional_call(block, p, x), params, backend.asarray(x_host)
    )
    dparams, dx = pullback(backend.asarray(dy_host))
    with pytest.raises(RuntimeError, match="already used"):
        pullback(backend.asarray(dy_host))
    tx = torch.tensor(x_host, requires_grad=True)
    tw = torch.tensor(to_numpy(params["0.weight"]), requires_grad=True)
    tb = torch.tensor(to_numpy(params["0.bias"]), requires_grad=True)
    ty = torch.tanh(torch.nn.functional.conv2d(tx, tw, tb, padding=1))
    want = torch.autograd.grad(ty, [tx, tw, tb], torch.tensor(dy_host))
    assert_close(y, ty.detach().numpy())
    assert_close(dx, want[0].numpy())
    assert_close(dparams["0.weight"], want[1].numpy())
    assert_close(dparams["0.bias"], want[2].numpy())


def test_stop_gradient(backend: BackendCase) -> None:
    def f(x: Any) -> Any:
        xp = _ns(x)
        frozen = xpnet.stop_gradient(x)
        assert not frozen.requires_grad and x.requires_grad
        return xp.sum(x * frozen + xpnet.stop_gradient({"a": x})["a"])

    x = np.asarray([1.0, -2.0, 3.0])
    assert_close(xpnet.grad(f)(backend.asarray(x)), x)  # d/dx (x * c + c) = c
    plain = backend.asarray(x)
    assert xpnet.stop_gradient(plain) is plain  # outside a differentiation: itself


def test_value_and_grad_train_false_uses_running_statistics(backend: BackendCase) -> None:
    torch = pytest.importorskip("torch")
    xpnet.seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, dtype="float64"), nn.BatchNorm2d(3, dtype="float64"), nn.Dropout(0.5)
    )
    tmodel = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Dropout(0.5)
    ).double()
    state = {k: to_numpy(v) for k, v in model.state_dict().items()}
    state["1.running_mean"] = np.asarray([0.1, -0.2, 0.3])
    state["1.running_var"] = np.asarray([0.5, 2.0, 1.5])
    model.load_state_dict(state)
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    x = np.random.default_rng(0).normal(size=(2, 2, 5, 5))
    target = np.random.default_rng(1).normal(size=(2, 3, 3, 3))
    tmodel.eval()
    tloss = torch.nn.functional.mse_loss(tmodel(torch.tensor(x)), torch.tensor(target))
    tgrads = dict(zip([n for n, _ in tmodel.named_parameters()],
                      torch.autograd.grad(tloss, list(tmodel.parameters())), strict=True))  # fmt: skip
    model.train()
    loss, grads = xpnet.value_and_grad(
        model, F.mse_loss, backend.asarray(x), backend.asarray(target), train=False
    )
    assert model.training  # its mode is restored
    assert_close(loss, tloss.detach().numpy())
    for name, grad in grads.items():
        assert_close(grad, tgrads[name].numpy())
    for key in ("1.running_mean", "1.running_var"):  # inference leaves the statistics alone
        assert_close(model.state_dict()[key], state[key])


# -------------------------------------------------------------------------------- errors


def test_in_place_writes_and_missing_pullbacks_are_errors(backend: BackendCase) -> None:
    x = backend.asarray(np.arange(6.0).reshape(2, 3))

    def run(body: Any) -> None:
        xpnet.grad(lambda a: _ns(a).sum(body(a)))(x)

    def setitem(a: Any) -> Any:
        a[0, 0] = 1.0
        return a

    with pytest.raises(
        DifferentiationError, match=r"x\[\(0, 0\)\] = \.\.\.: writing into an array"
    ):
        run(setitem)

    def iadd_leaf(a: Any) -> Any:
        a += 1.0
        return a

    with pytest.raises(
        DifferentiationError,
        match=r"x \+= \.\.\.: an in-place update of an array being differentiated",
    ):
        run(iadd_leaf)

    def iadd_view(a: Any) -> Any:
        b = a * 2.0
        top = b[0, :]
        b *= 3.0
        return top

    with pytest.raises(DifferentiationError, match=r"x \*= \.\.\.: x shares memory"):
        run(iadd_view)

    with pytest.raises(DifferentiationError, match=r"unique_values: has no pullback"):
        run(lambda a: _ns(a).unique_values(a))
    with pytest.raises(DifferentiationError, match=r"x\[.*\]: this kind of index has no pullback"):
        run(lambda a: a[_ns(a).asarray([0, 1]), 1:])

    # An xpnet op asked for a gradient it does not have.
    probabilities = backend.asarray(np.full((2, 3), 1.0 / 3.0))

    def soft_target(a: Any) -> Any:
        return F.cross_entropy(probabilities * 2.0, a * 1.0)

    with pytest.raises(DifferentiationError, match=r"cross_entropy: target carries a gradient"):
        xpnet.grad(soft_target)(probabilities)

    # Differentiating inside a differentiation.
    def outer(a: Any) -> Any:
        return xpnet.grad(lambda b: _ns(b).sum(b * a))(a)[0, 0]

    with pytest.raises(DifferentiationError, match="higher-order"):
        xpnet.grad(outer)(x)


def test_numpy_functions_on_recorded_arrays(backend: BackendCase) -> None:
    if backend.name not in ("numpy", "numpy_readonly"):
        pytest.skip("NumPy's functions only meet recorded NumPy arrays")
    x = backend.asarray(np.asarray([0.5, 1.5]))
    with pytest.raises(DifferentiationError, match="numpy.mean was called"):
        xpnet.grad(lambda a: np.mean(a))(x)
    with pytest.raises(DifferentiationError, match="numpy.cbrt"):
        xpnet.grad(lambda a: _ns(a).sum(np.cbrt(a)))(x)
    # Ufuncs with a standard twin record as that function; so do mixed operators.
    grad = xpnet.grad(lambda a: _ns(a).sum(np.exp(a) + np.ones(2) * a))(x)
    assert_close(grad, np.exp([0.5, 1.5]) + 1.0)


def test_augmented_assignment_on_an_intermediate_records(backend: BackendCase) -> None:
    def f(a: Any) -> Any:
        h = a * 2.0
        alias = h
        h += a  # alias sees it too, as with an in-place update
        h **= 2
        return _ns(a).sum(alias)

    x = np.asarray([1.0, -2.0])
    assert_close(xpnet.grad(f)(backend.asarray(x)), 2 * (3 * x) * 3)  # d/dx (3x)^2


def test_a_buffer_set_in_forward_keeps_no_gradient(backend: BackendCase) -> None:
    class Tracker(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("last_mean", backend.asarray(np.zeros(())))
            self.register_parameter("scale", backend.asarray(np.ones(())))

        def forward(self, x: Any) -> Any:
            y = x * self.scale
            self.last_mean = _ns(y).mean(y)
            return y

    model = Tracker()
    x = backend.asarray(np.asarray([[1.0, 3.0]]))
    _, grads = xpnet.value_and_grad(model, lambda y, t: _ns(y).sum(y * t), x, x)
    assert not xpnet.functional._autodiff.is_tracked(model.last_mean)
    assert float(xpnet.to_numpy(model.last_mean)) == 2.0
    assert_close(grads["scale"], 10.0)


# ---------------------------------------------------------------------- random programs

UNARY = ["tanh", "sin", "exp_tanh", "square", "abs_plus", "sqrt_soft", "neg", "log_soft"]
BINARY = ["add", "sub", "mul", "div_soft", "maximum", "where", "pow_abs"]
SHAPED = ["centre", "flip", "roll", "transpose_back", "concat_halves", "stack_pick",
          "matmul_chain", "softmax", "take", "sort", "cumsum", "slice_pad", "max_keep",
          "std_keep", "prod_soft", "reshape_back"]  # fmt: skip


def _apply(xp: Any, op: str, a: Any, b: Any) -> Any:
    """One step of a random program on (2, 3) arrays; the result is (2, 3) again."""
    if op == "tanh":
        return xp.tanh(a)
    if op == "sin":
        return xp.sin(a)
    if op == "exp_tanh":
        return xp.exp(xp.tanh(a))
    if op == "square":
        return a * a * 0.5
    if op == "abs_plus":
        return xp.abs(a) + 0.1
    if op == "sqrt_soft":
        return xp.sqrt(a * a + 1.0)
    if op == "neg":
        return -a
    if op == "log_soft":
        return xp.log(a * a + 1.0)
    if op == "add":
        return a + b
    if op == "sub":
        return a - 2.0 * b
    if op == "mul":
        return a * b
    if op == "div_soft":
        return a / (b * b + 1.0)
    if op == "maximum":
        return xp.maximum(a, b)
    if op == "where":
        return xp.where(a > b, a * 2.0, b)
    if op == "pow_abs":
        return (xp.abs(a) + 0.5) ** xp.tanh(b)
    if op == "centre":
        return a - xp.mean(a, axis=1, keepdims=True)
    if op == "flip":
        return xp.flip(a, axis=1)
    if op == "roll":
        return xp.roll(a, 1, axis=1)
    if op == "transpose_back":
        return xp.permute_dims(xp.permute_dims(a, (1, 0)) * 1.5, (1, 0))
    if op == "concat_halves":
        return xp.concat([b[:, :1], a[:, 1:]], axis=1)
    if op == "stack_pick":
        return xp.stack([a, b], axis=0)[1, ...] * a
    if op == "matmul_chain":
        return (a @ xp.matrix_transpose(b)) @ a / 3.0
    if op == "softmax":
        return F.softmax(a, dim=1)
    if op == "take":
        return xp.take(a, xp.asarray([2, 0, 0]), axis=1)
    if op == "sort":
        return xp.sort(a, axis=1)
    if op == "cumsum":
        return xp.cumulative_sum(a, axis=1)
    if op == "slice_pad":
        return xp.concat([a[:, 1:], xp.zeros_like(a[:, :1])], axis=1)
    if op == "max_keep":
        return a * xp.max(b, axis=1, keepdims=True)
    if op == "std_keep":
        return a / (xp.std(a, axis=0, keepdims=True) + 1.0)
    if op == "prod_soft":
        return a * xp.prod(xp.tanh(b) + 1.5, axis=1, keepdims=True)
    if op == "reshape_back":
        return xp.reshape(xp.reshape(a, (3, 2)) * xp.reshape(b, (3, 2)), (2, 3))
    raise AssertionError(op)


programs = st.lists(
    st.tuples(st.sampled_from(UNARY + BINARY + SHAPED), st.integers(0, 99), st.integers(0, 99)),
    min_size=1,
    max_size=8,
)


def _run_program(xp: Any, steps: list[tuple[str, int, int]], leaves: list[Any]) -> Any:
    pool = list(leaves)
    for op, i, j in steps:
        pool.append(_apply(xp, op, pool[i % len(pool)], pool[j % len(pool)]))
    weights = [float(k + 1) / len(pool) for k in range(len(pool))]
    return sum(xp.sum(value * w) for value, w in zip(pool, weights, strict=True))


@given(steps=programs, seed=st.integers(0, 2**16))
def test_random_programs_match_torch_autograd(backend: BackendCase, steps, seed) -> None:
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xt

    rng = np.random.default_rng(seed)
    hosts = [rng.normal(size=(2, 3)) for _ in range(3)]
    tensors = [torch.tensor(h, requires_grad=True) for h in hosts]
    expected_value = _run_program(xt, steps, tensors)
    expected = torch.autograd.grad(expected_value, tensors, allow_unused=True)

    def program(*leaves: Any) -> Any:
        return _run_program(_ns(*leaves), steps, list(leaves))

    value, grads = xpnet.value_and_grad(program, argnums=(0, 1, 2))(
        *[backend.asarray(h) for h in hosts]
    )
    assert_close(value, expected_value.detach().numpy(), rtol=1e-9, atol=1e-12)
    for grad, want, host in zip(grads, expected, hosts, strict=True):
        assert_close(grad, np.zeros_like(host) if want is None else want.numpy(),
                     rtol=1e-9, atol=1e-12)  # fmt: skip
