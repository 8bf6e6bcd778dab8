"""Shared test tools: the backend case, comparisons and the three gradient oracles.

Oracles, all independent of the code under test:

* plain-loop float64 references written from the definitions (``reference_*.py``);
* finite differences in float64 (:func:`check_vjp_finite_differences`), run on the backend
  under test by evaluating the op itself at perturbed inputs;
* PyTorch autograd in float64 (:func:`torch_vjp`), skipped when torch is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np
import pytest

import xpnet
import xpnet.functional as F


@dataclass(frozen=True)
class BackendCase:
    """One backend under test."""

    name: str
    xp: Any
    device: Any

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        """Put host data on this backend (float64 unless ``dtype`` says otherwise)."""
        host = np.asarray(value)
        if dtype is None:
            dtype = "float64" if host.dtype.kind == "f" else str(host.dtype)
        with xpnet.use_backend(self.name, self.device):
            return xpnet.asarray(host, dtype=dtype)

    def check_like(self, result: Any, reference: Any) -> None:
        """Assert ``result`` has ``reference``'s namespace, device and dtype."""
        assert array_api_compat.array_namespace(result) is array_api_compat.array_namespace(
            reference
        ), f"namespace changed on {self.name}"
        assert array_api_compat.device(result) == array_api_compat.device(reference)
        assert result.dtype == reference.dtype, f"{result.dtype} != {reference.dtype}"


def to_numpy(x: Any) -> np.ndarray:
    return np.asarray(xpnet.to_numpy(x), dtype=np.float64)


def assert_close(actual: Any, expected: Any, *, rtol: float = 1e-10, atol: float = 1e-10) -> None:
    """Compare an array of any backend with a host reference."""
    got = to_numpy(actual)
    want = np.asarray(expected, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != expected {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def tolerance(dtype: str) -> dict[str, float]:
    """Comparison tolerances for a dtype."""
    return {"rtol": 1e-10, "atol": 1e-10} if dtype == "float64" else {"rtol": 2e-4, "atol": 2e-5}


def check_vjp_finite_differences(
    case: BackendCase,
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any] | None = None,
    *,
    wrt: Sequence[int],
    seed: int = 0,
    directions: int = 3,
    eps: float = 1e-6,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    output_index: int | None = None,
) -> None:
    """Check the pullback against central differences along random directions, in float64.

    For a random cotangent ``dy`` and random direction ``v`` for argument ``i``,
    ``<pullback(dy)[i], v>`` must equal ``(L(a_i + eps v) - L(a_i - eps v)) / (2 eps)``
    with ``L = <fn(...), dy>``. Host arrays in ``args`` are moved to the backend as
    float64; other arguments pass through unchanged.

    ``output_index`` picks one element of a tuple-valued output (e.g. ``batch_norm``).
    """
    kwargs = kwargs or {}
    rng = np.random.default_rng(seed)

    def on_backend(values: Sequence[Any]) -> list[Any]:
        return [case.asarray(v) if isinstance(v, np.ndarray) else v for v in values]

    def primary(output: Any) -> Any:
        return output if output_index is None else output[output_index]

    output, pullback = F.vjp(fn, *on_backend(args), **kwargs)
    y = primary(output)
    dy = rng.normal(size=tuple(y.shape))
    grads = pullback(case.asarray(dy))
    assert len(grads) == len(args)

    def loss(values: Sequence[Any]) -> float:
        return float(np.sum(to_numpy(primary(fn(*on_backend(values), **kwargs))) * dy))

    for i in wrt:
        grad = to_numpy(grads[i])
        assert grad.shape == np.shape(args[i]), f"gradient {i} has shape {grad.shape}"
        for _ in range(directions):
            v = rng.normal(size=np.shape(args[i]))
            plus = list(args)
            minus = list(args)
            plus[i] = args[i] + eps * v
            minus[i] = args[i] - eps * v
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            analytic = float(np.sum(grad * v))
            assert abs(analytic - numeric) <= atol + rtol * abs(numeric), (
                f"argument {i}: pullback gives {analytic}, finite differences {numeric}"
            )


def torch_vjp(
    torch_fn: Callable[..., Any],
    args: Sequence[Any],
    cotangent: np.ndarray,
    *,
    wrt: Sequence[int],
    kwargs: dict[str, Any] | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Output and input gradients from PyTorch autograd in float64 (skip without torch)."""
    torch = pytest.importorskip("torch")
    tensors = []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            t = torch.tensor(a)
            if i in wrt:
                t.requires_grad_(True)
            tensors.append(t)
        else:
            tensors.append(a)
    out = torch_fn(*tensors, **(kwargs or {}))
    grads = torch.autograd.grad(out, [tensors[i] for i in wrt], torch.tensor(cotangent))
    return out.detach().numpy(), [g.numpy() for g in grads]


def random_cotangent(shape: Sequence[int], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=tuple(shape))


def module_vjp(module: Any, x: Any) -> tuple[Any, Callable[[Any], tuple[Any, dict[str, Any]]]]:
    """A module's output and a pullback ``dy -> (dx, {parameter name: gradient})``, from
    the recording of its forward (xpnet.functional.vjp over nn.functional_call)."""
    params = dict(module.named_parameters())

    def run(weights: dict[str, Any], inputs: Any) -> Any:
        return xpnet.nn.functional_call(module, weights, inputs)

    y, pullback = F.vjp(run, params, x)

    def module_pullback(dy: Any) -> tuple[Any, dict[str, Any]]:
        dparams, dx = pullback(dy)
        return dx, dparams

    return y, module_pullback
