"""Layer, group and instance normalisation: forward against loops from the definitions
and torch, every gradient against torch autograd and finite differences (float64), and
the modules (LayerNorm, GroupNorm, InstanceNorm1d/2d/3d, BatchNorm1d/3d) against torch's."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

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
from reference_norms import group_norm_loops, instance_norm_loops, layer_norm_loops

# id, op, input shape, affine shape (None: no weight/bias), positional extras, keyword extras,
# loop reference (x, w, b) -> y, torch call (t, x, w, b)
CASES: list[tuple[str, Any, tuple[int, ...], Any, tuple[Any, ...], dict[str, Any], Any, Any]] = [
    ("layer_last", F.layer_norm, (3, 4, 5), (5,), (5,), {},
     lambda x, w, b: layer_norm_loops(x, 1, w, b),
     lambda t, x, w, b: t.nn.functional.layer_norm(x, (5,), w, b)),
    ("layer_two_axes", F.layer_norm, (2, 3, 4, 4), (4, 4), ((4, 4),), {"eps": 1e-3},
     lambda x, w, b: layer_norm_loops(x, 2, w, b, 1e-3),
     lambda t, x, w, b: t.nn.functional.layer_norm(x, (4, 4), w, b, 1e-3)),
    ("layer_plain", F.layer_norm, (4, 6), None, (6,), {},
     lambda x, w, b: layer_norm_loops(x, 1),
     lambda t, x, w, b: t.nn.functional.layer_norm(x, (6,))),
    ("group", F.group_norm, (2, 6, 3, 3), (6,), (3,), {},
     lambda x, w, b: group_norm_loops(x, 3, w, b),
     lambda t, x, w, b: t.nn.functional.group_norm(x, 3, w, b)),
    ("group_1d_one_group", F.group_norm, (3, 4, 5), (4,), (1,), {"eps": 1e-4},
     lambda x, w, b: group_norm_loops(x, 1, w, b, 1e-4),
     lambda t, x, w, b: t.nn.functional.group_norm(x, 1, w, b, 1e-4)),
    ("group_per_channel_plain", F.group_norm, (2, 4, 2, 2, 2), None, (4,), {},
     lambda x, w, b: group_norm_loops(x, 4),
     lambda t, x, w, b: t.nn.functional.group_norm(x, 4)),
    ("instance_2d", F.instance_norm, (2, 3, 4, 4), (3,), (), {},
     lambda x, w, b: instance_norm_loops(x, w, b),
     lambda t, x, w, b: t.nn.functional.instance_norm(x, weight=w, bias=b)),
    ("instance_1d_plain", F.instance_norm, (3, 2, 5), None, (), {},
     lambda x, w, b: instance_norm_loops(x),
     lambda t, x, w, b: t.nn.functional.instance_norm(x)),
]  # fmt: skip
IDS = [case[0] for case in CASES]


def _host(shape: tuple[int, ...], affine: Any, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=0.5, scale=2.0, size=shape)
    if affine is None:
        return x, None, None
    return x, rng.uniform(0.5, 1.5, size=affine), rng.normal(size=affine)


def _call(op: Any, x: Any, w: Any, b: Any, extras: tuple[Any, ...], kw: dict[str, Any]) -> Any:
    if op is F.instance_norm:
        return op(x, None, None, w, b, **kw)
    return op(x, *extras, w, b, **kw)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("name", "op", "shape", "affine", "extras", "kw", "loops", "t"), CASES,
                         ids=IDS)  # fmt: skip
def test_forward_and_gradients_match_loops_and_torch(
    backend: BackendCase, dtype, name, op, shape, affine, extras, kw, loops, t
) -> None:
    torch = pytest.importorskip("torch")
    x, w, b = _host(shape, affine, seed=1)
    args = [backend.asarray(v, dtype) if v is not None else None for v in (x, w, b)]
    y = _call(op, *args, extras, kw)
    backend.check_like(y, args[0])
    assert_close(y, loops(x, w, b), **tolerance(dtype))
    dy = random_cotangent(y.shape)
    hosts = [v for v in (x, w, b) if v is not None]

    def torch_fn(*tensors: Any) -> Any:
        tx, tw, tb = (*tensors, None, None)[:3]
        return t(torch, tx, tw, tb)

    want_y, want = torch_vjp(torch_fn, hosts, dy, wrt=tuple(range(len(hosts))))
    assert_close(y, want_y, **tolerance(dtype))

    def program(*arrays: Any) -> Any:
        xx, ww, bb = (*arrays, None, None)[:3]
        out = _call(op, xx, ww, bb, extras, kw)
        import array_api_compat

        return array_api_compat.array_namespace(out).sum(out * backend.asarray(dy, dtype))

    grads = xpnet.grad(program, argnums=tuple(range(len(hosts))))(
        *[backend.asarray(v, dtype) for v in hosts]
    )
    for grad, expected in zip(grads, want, strict=True):
        assert_close(grad, expected, **tolerance(dtype))


@pytest.mark.parametrize(("name", "op", "shape", "affine", "extras", "kw", "loops", "t"), CASES,
                         ids=IDS)  # fmt: skip
def test_pullbacks_finite_differences(
    backend: BackendCase, name, op, shape, affine, extras, kw, loops, t
) -> None:
    x, w, b = _host(shape, affine, seed=2)
    if op is F.instance_norm:
        args, wrt = [x, None, None, w, b], (0, 3, 4)
    else:
        args, wrt = [x, *extras, w, b], (0, 1 + len(extras), 2 + len(extras))
    if affine is None:
        wrt = (0,)
    check_vjp_finite_differences(backend, op, args, kw, wrt=wrt)


def test_instance_norm_with_running_statistics_matches_torch(backend: BackendCase) -> None:
    torch = pytest.importorskip("torch")
    x, w, b = _host((2, 3, 4), (3,), seed=3)
    mean, var = np.asarray([0.1, -0.2, 0.3]), np.asarray([0.5, 2.0, 1.0])
    dy = random_cotangent(x.shape)
    _, want = torch_vjp(
        lambda tx, tw, tb: torch.nn.functional.instance_norm(
            tx, torch.tensor(mean), torch.tensor(var), tw, tb, use_input_stats=False
        ),
        [x, w, b], dy, wrt=(0, 1, 2),
    )  # fmt: skip
    _y, pullback = F.vjp(F.instance_norm, *[backend.asarray(v) for v in (x, mean, var, w, b)],
                        use_input_stats=False)  # fmt: skip
    dx, _, _, dw, db = pullback(backend.asarray(dy))
    for got, expected in zip((dx, dw, db), want, strict=True):
        assert_close(got, expected)


def test_norm_argument_errors(backend: BackendCase) -> None:
    x = backend.asarray(np.ones((2, 6, 3)))
    with pytest.raises(
        ValueError, match=r"input: its trailing axes must be normalized_shape \(4,\)"
    ):
        F.layer_norm(x, 4)
    with pytest.raises(ValueError, match="normalized_shape: expected a positive int"):
        F.layer_norm(x, 0)
    with pytest.raises(ValueError, match="num_groups: the 6 channels must divide into 4 groups"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match=r"weight: expected shape \(6,\)"):
        F.group_norm(x, 3, backend.asarray(np.ones(3)))
    with pytest.raises(ValueError, match="use_input_stats=False normalises with them"):
        F.instance_norm(x, use_input_stats=False)
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        F.instance_norm(backend.asarray(np.ones((2, 3, 1))))
    with pytest.raises(ValueError, match="eps: expected a non-negative float"):
        F.layer_norm(x, 3, eps=-1.0)
