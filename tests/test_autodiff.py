"""Differentiating Array API code: every standard function's pullback, checked two ways.

Each case is one program written against the standard. It runs twice:

* on the backend under test, differentiated by xpnet (``xpnet.grad``);
* on torch tensors through array-api-compat's torch namespace, differentiated by torch
  autograd: the same program, an independent implementation of every derivative.

The two must agree to 1e-9 (float64), and xpnet's gradient must match central finite
differences of the program on the backend itself. A last test checks that every function
xpnet records has a case here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnet
import xpnet.functional as F
from helpers import BackendCase, assert_close, to_numpy
from xpnet.functional._autodiff import LINALG, STANDARD

RTOL = 1e-9  # against torch autograd, float64


@dataclass(frozen=True)
class Case:
    """A program ``fn(xp, *arrays)`` and how to draw its float64 inputs."""

    name: str
    fn: Callable[..., Any]
    shapes: tuple[tuple[int, ...], ...]
    low: float = -1.0
    high: float = 1.0
    covers: tuple[str, ...] | None = None  # recorded functions it exercises (None: its name)
    skip: dict[str, str] = field(default_factory=dict)  # backend -> reason
    torch_oracle: bool = True  # torch autograd has this derivative

    def inputs(self, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [rng.uniform(self.low, self.high, size=shape) for shape in self.shapes]


def _c(name: str, fn: Callable[..., Any], *shapes: tuple[int, ...], **kw: Any) -> Case:
    return Case(name, fn, tuple(shapes), **kw)


def _named(name: str) -> Callable[..., Any]:
    """The namespace's function ``name`` applied to the arrays."""
    return lambda xp, *arrays: getattr(xp, name)(*arrays)


S = (3, 4)
UNARY = [
    _c(n, _named(n), S)
    for n in ["abs", "asinh", "atan", "cos", "cosh", "exp", "expm1", "negative", "positive",
              "sin", "sinh", "square", "tan", "tanh", "ceil", "floor", "round", "sign", "trunc",
              "real", "conj"]
]  # fmt: skip
UNARY += [
    _c(n, _named(n), S, low=0.1, high=2.0)
    for n in ["log", "log1p", "log2", "log10", "sqrt", "reciprocal"]
]
UNARY += [_c(n, _named(n), S, low=-0.9, high=0.9) for n in ["asin", "acos", "atanh"]]
UNARY.append(_c("acosh", lambda xp, x: xp.acosh(x), S, low=1.1, high=3.0))

BINARY = [
    _c(n, _named(n), S, (4,), low=0.2, high=2.0)
    for n in ["add", "subtract", "multiply", "divide", "pow", "maximum", "minimum", "atan2",
              "hypot", "logaddexp", "copysign", "remainder"]
]  # fmt: skip
BINARY.append(
    _c("floor_divide", lambda xp, a, b: xp.floor_divide(a, b), S, S, low=0.2, high=2.0,
       torch_oracle=False)
)  # fmt: skip

OPERATORS = [
    _c("operators", lambda xp, a, b: (a + b) * (a - 2.0) / (b + 3.0) - (-a) ** 2 + abs(b) + (+a),
       S, (4,), covers=("add", "subtract", "multiply", "divide", "pow", "negative", "abs",
                        "positive")),
    _c("reflected operators", lambda xp, a: (2.0 - a) * (3.0 / (a + 2.0)) + 2.0**a + 1.0 * a,
       S, covers=("subtract", "divide", "pow", "multiply", "add")),
    _c("pow of a base array", lambda xp, a, b: a**b, S, S, low=0.2, high=2.0, covers=("pow",)),
    _c("matmul operator", lambda xp, a, b: a @ b, (2, 3, 4), (4, 5), covers=("matmul",)),
    _c("mod operator", lambda xp, a: a % 0.3, S, low=0.1, high=2.0, covers=("remainder",)),
    _c("transposes", lambda xp, a, b: a.T @ a + b.mT, S, (4, 4),
       covers=("permute_dims", "matrix_transpose", "matmul")),
]  # fmt: skip

OTHERS = [
    _c("where", lambda xp, a, b: xp.where(a > 0, a * 2.0, b), S, (4,)),
    _c("where with scalars", lambda xp, a: xp.where(a > 0, a, 0.5), S, covers=("where",)),
    _c("clip", lambda xp, a: xp.clip(a, -0.5, 0.4), S),
    _c("clip with arrays", lambda xp, a, lo, hi: xp.clip(a, -xp.abs(lo) - 0.5, xp.abs(hi) + 0.5),
       S, (4,), (4,),
       low=-2.0, high=2.0, covers=("clip",), torch_oracle=False),  # compat's clip detaches them
    _c("astype", lambda xp, a: xp.astype(xp.astype(a, xp.int64), xp.float64)
       + xp.astype(a, xp.float64) * a, S),
    _c("sum", lambda xp, a: xp.sum(a, axis=1) + xp.sum(a, axis=(0, 1), keepdims=True), S),
    _c("mean", lambda xp, a: xp.mean(a, axis=0, keepdims=True) * xp.mean(a), S),
    _c("prod", lambda xp, a: xp.prod(a, axis=1), S, low=0.5, high=1.5),
    _c("prod with zeros", lambda xp, a: xp.prod(xp.where(a > 0.3, 0.0, a), axis=0), (6, 3),
       covers=("prod",)),
    _c("max", lambda xp, a: xp.max(a, axis=1) + xp.max(a), S),
    _c("min", lambda xp, a: xp.min(a, axis=0, keepdims=True), S),
    _c("var", lambda xp, a: xp.var(a, axis=1, correction=1), S),
    _c("std", lambda xp, a: xp.std(a, axis=(0, 1)) + xp.std(a, axis=0, keepdims=True), S),
    _c("cumulative_sum", lambda xp, a: xp.cumulative_sum(a, axis=1, include_initial=True)
       + 0.0, S),
    _c("reshape", lambda xp, a: xp.reshape(a, (2, 6)), S),
    _c("permute_dims", lambda xp, a: xp.permute_dims(a, (2, 0, 1)), (2, 3, 4)),
    _c("matrix_transpose", lambda xp, a: xp.matrix_transpose(a), (2, 3, 4)),
    _c("expand_dims", lambda xp, a: xp.expand_dims(a, axis=1), S),
    _c("squeeze", lambda xp, a: xp.squeeze(a, axis=1), (3, 1, 4)),
    _c("broadcast_to", lambda xp, a: xp.broadcast_to(a, (2, 3, 4)), (3, 1)),
    _c("broadcast_arrays", lambda xp, a, b: xp.broadcast_arrays(a, b)[0] * 2.0
       + xp.broadcast_arrays(a, b)[1], (3, 1), (4,)),
    _c("concat", lambda xp, a, b: xp.concat([a, b, a], axis=1), S, (3, 2)),
    _c("concat flat", lambda xp, a, b: xp.concat([a, b], axis=None), S, (5,),
       covers=("concat",)),
    _c("stack", lambda xp, a, b: xp.stack([a, b], axis=-1), S, S),
    _c("unstack", lambda xp, a: xp.unstack(a, axis=1)[2] * xp.unstack(a, axis=1)[0], S),
    _c("flip", lambda xp, a: xp.flip(a, axis=0), S),
    _c("roll", lambda xp, a: xp.roll(a, (1, -1), axis=(0, 1)), S),
    _c("moveaxis", lambda xp, a: xp.moveaxis(a, 0, -1), (2, 3, 4)),
    _c("repeat", lambda xp, a: xp.repeat(a, 3, axis=1), S),
    _c("repeat by element", lambda xp, a: xp.repeat(a, xp.asarray([2, 0, 1]), axis=0), S,
       covers=("repeat", "asarray")),
    _c("tile", lambda xp, a: xp.tile(a, (2, 1, 3)), S),
    _c("tril", lambda xp, a: xp.tril(a, k=1), (4, 4)),
    _c("triu", lambda xp, a: xp.triu(a, k=-1), (4, 4)),
    _c("sort", lambda xp, a: xp.sort(a, axis=1, descending=True) * xp.arange(4.0), S),
    _c("diff", lambda xp, a, b: xp.diff(a, axis=1, n=2, prepend=b, append=a), S, (3, 2)),
    _c("take", lambda xp, a: xp.take(a, xp.asarray([3, 0, 3, 1]), axis=1), S),
    _c("take_along_axis", lambda xp, a: xp.take_along_axis(a, xp.argsort(a, axis=0), axis=0), S),
    _c("matmul", lambda xp, a, b: xp.matmul(a, b), (2, 3, 4), (4, 2)),
    _c("matmul of vectors", lambda xp, a, b, c: xp.matmul(xp.matmul(a, b), c) * xp.matmul(b, c)
       + xp.matmul(a, a), (4,), (4, 3), (3,), covers=("matmul",)),
    _c("tensordot", lambda xp, a, b: xp.tensordot(a, b, axes=([1, 0], [0, 2])), (3, 2, 5),
       (2, 4, 3)),
    _c("tensordot int", lambda xp, a, b: xp.tensordot(a, b, axes=1), S, (4, 2),
       covers=("tensordot",)),
    _c("vecdot", lambda xp, a, b: xp.vecdot(a, b, axis=-1), (2, 3, 4), (3, 4)),
    _c("linalg", lambda xp, a, b: xp.linalg.matmul(a, b) + xp.linalg.tensordot(a, b, axes=1)
       + xp.linalg.vecdot(a, xp.linalg.matrix_transpose(b))[:, None], S, (4, 3),
       covers=("linalg.matmul", "linalg.tensordot", "linalg.vecdot", "linalg.matrix_transpose")),
    _c("vector_norm", lambda xp, a: xp.linalg.vector_norm(a, axis=1)
       + xp.linalg.vector_norm(a, axis=1, ord=1) + xp.linalg.vector_norm(a, axis=1, ord=3)
       + xp.linalg.vector_norm(a, axis=1, ord=float("inf")), S, covers=("linalg.vector_norm",)),
    _c("asarray", lambda xp, a: xp.asarray(a, dtype=xp.float64) * xp.asarray([1.0, 2.0, 3.0, 4.0]),
       S),
    _c("to_device", lambda xp, a: array_api_compat.to_device(a, array_api_compat.device(a)) * 2.0,
       S, covers=()),
]  # fmt: skip

INDEXING = [
    _c("slices", lambda xp, a: a[1:, ::2] + a[:2, 1:3], (3, 4), covers=("getitem",)),
    _c("strided and reversed", lambda xp, a: a[::-2, 3:0:-2] + a[0:5:2, 1::4], (5, 6),
       covers=("getitem",), skip={"torch": "torch has no negative-step slices"},
       torch_oracle=False),
    _c("integers, None and ellipsis", lambda xp, a: a[1, ..., None, 2] * a[..., 0, :][:, None, :],
       (2, 3, 4), covers=("getitem",)),
    _c("an integer array", lambda xp, a: a[:, xp.asarray([3, 1, 3])]
       + a[xp.asarray([0, 0]), ...][:, :3], (2, 4), covers=("getitem",),
       skip={"array_api_strict": "it takes integer-array indices only beside integers"}),
    _c("a boolean mask", lambda xp, a: a[a > 0.2] * 2.0, (4, 5), covers=("getitem",),
       skip={"jax": "JAX cannot index by a mask (its shape depends on the data)"}),
    _c("iteration", lambda xp, a: xp.stack([row * float(i) for i, row in enumerate(a)]), S,
       covers=()),
]  # fmt: skip

PRIMITIVES = [
    _c("xpnet ops among array code", lambda xp, a, w: F.softmax(F.linear(xp.tanh(a), w), 1)
       * xp.mean(a), S, (5, 4), covers=()),
]  # fmt: skip

CASES = UNARY + BINARY + OPERATORS + OTHERS + INDEXING + PRIMITIVES


def _namespace(*arrays: Any) -> Any:
    return array_api_compat.array_namespace(*arrays)


def _xpnet_grads(backend: BackendCase, case: Case, host: list[np.ndarray], cot: np.ndarray):
    cotangent = backend.asarray(cot)

    def loss(*arrays: Any) -> Any:
        xp = _namespace(*arrays)
        return xp.sum(case.fn(xp, *arrays) * cotangent)

    args = [backend.asarray(a) for a in host]
    value, grads = xpnet.value_and_grad(loss, argnums=tuple(range(len(args))))(*args)
    return float(xpnet.to_numpy(value)), grads


def _torch_grads(case: Case, host: list[np.ndarray], cot: np.ndarray) -> list[np.ndarray]:
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xt

    tensors = [torch.tensor(a, requires_grad=True) for a in host]
    out = case.fn(xt, *tensors)
    grads = torch.autograd.grad((out * torch.tensor(cot)).sum(), tensors, allow_unused=True)
    return [np.zeros_like(a) if g is None else g.numpy() for a, g in zip(host, grads, strict=True)]


def _output_shape(case: Case, host: list[np.ndarray]) -> tuple[int, ...]:
    # On NumPy arrays wrapped as recorded constants: NumPy 1.26's own arrays lack .mT.
    from xpnet.functional._autodiff import constant, recording_namespace

    arrays = [constant(np.asarray(a)) for a in host]
    return tuple(case.fn(recording_namespace(arrays[0]._xp), *arrays).shape)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_pullback_matches_torch_autograd_and_finite_differences(
    backend: BackendCase, case: Case
) -> None:
    if backend.name in case.skip:
        pytest.skip(f"{backend.name}: {case.skip[backend.name]}")
    host = case.inputs(seed=len(case.name))
    cot = np.random.default_rng(7).normal(size=_output_shape(case, host))
    _value, grads = _xpnet_grads(backend, case, host, cot)
    for grad, arg in zip(grads, host, strict=True):
        backend.check_like(grad, backend.asarray(arg))
    if case.torch_oracle:
        expected = _torch_grads(case, host, cot)
        for grad, want in zip(grads, expected, strict=True):
            assert_close(grad, want, rtol=RTOL, atol=1e-12)
    # Central differences of the same program on the backend, along random directions.
    rng = np.random.default_rng(8)
    eps = 1e-6

    def value_at(arrays: list[np.ndarray]) -> float:
        return _xpnet_grads(backend, case, arrays, cot)[0]

    for i, grad in enumerate(grads):
        direction = rng.normal(size=host[i].shape)
        plus = [a + eps * direction if j == i else a for j, a in enumerate(host)]
        minus = [a - eps * direction if j == i else a for j, a in enumerate(host)]
        numeric = (value_at(plus) - value_at(minus)) / (2 * eps)
        analytic = float(np.sum(to_numpy(grad) * direction))
        assert abs(analytic - numeric) <= 1e-7 + 1e-6 * abs(numeric), (i, analytic, numeric)


def test_every_recorded_function_has_a_case() -> None:
    covered = {name for case in CASES for name in (case.covers or (case.name,))}
    recorded = set(STANDARD) | {f"linalg.{name}" for name in LINALG}
    missing = sorted(recorded - covered)
    assert not missing, f"recorded functions without a gradient test: {missing}"
