"""vjp's dtype contract, for every op kind: gradients come back in their input's dtype, as
torch's autograd casts them, whatever the cotangent's floating dtype."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet.functional as F
from helpers import BackendCase, assert_close, random_cotangent, tolerance, torch_vjp

# name, op, host arguments (float ones become float32), extra keyword arguments, torch op name
CASES = [
    ("conv2d", F.conv2d, [(2, 3, 6, 6), (4, 3, 3, 3), (4,)], {"padding": 1}, "conv2d"),
    ("linear", F.linear, [(5, 4), (3, 4), (3,)], {}, "linear"),
    ("relu", F.relu, [(3, 4)], {}, "relu"),
    ("max_pool2d", F.max_pool2d, [(2, 2, 4, 4)], {"kernel_size": 2}, "max_pool2d"),
    ("mse_loss", F.mse_loss, [(6,), (6,)], {}, "mse_loss"),
    ("mse_loss of one element", F.mse_loss, [(), ()], {}, "mse_loss"),
]


@pytest.mark.parametrize(("name", "op", "shapes", "kwargs", "torch_name"), CASES)
def test_float64_cotangent_gives_gradients_in_the_inputs_dtype(
    backend: BackendCase, name, op, shapes, kwargs, torch_name
) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    host = [np.asarray(rng.normal(size=shape)).astype(np.float32) for shape in shapes]
    args = [backend.asarray(a, "float32") for a in host]
    y, pullback = F.vjp(op, *args, **kwargs)
    backend.check_like(y, args[0])
    dy = random_cotangent(y.shape, seed=22)
    grads = pullback(backend.asarray(dy, "float64"))
    _, expected = torch_vjp(
        getattr(torch.nn.functional, torch_name),
        [a.astype(np.float64) for a in host],
        dy,
        wrt=tuple(range(len(host))),
        kwargs=kwargs,
    )
    for grad, arg, want in zip(grads, args, expected, strict=True):
        backend.check_like(grad, arg)  # float32, not float64
        assert_close(grad, want, **tolerance("float32"))


def test_cross_entropy_of_one_sample_keeps_float32(backend: BackendCase) -> None:
    # Unbatched logits reduce to 0-d arrays, where NumPy 1.x promotes Python scalars to
    # float64; the loss and its gradient stay float32 (torch as the oracle).
    torch = pytest.importorskip("torch")
    logits = np.asarray([0.5, -1.0, 2.0], dtype=np.float32)
    x = backend.asarray(logits, "float32")
    target = backend.asarray(np.asarray(2), "int64")
    loss, pullback = F.vjp(F.cross_entropy, x, target, label_smoothing=0.3)
    backend.check_like(loss, x)
    (grad, *_) = pullback(backend.asarray(np.asarray(1.0), "float32"))
    backend.check_like(grad, x)
    want_loss, (want_grad,) = torch_vjp(
        torch.nn.functional.cross_entropy,
        [logits.astype(np.float64)],
        np.asarray(1.0),
        wrt=(0,),
        kwargs={"target": torch.tensor(2), "label_smoothing": 0.3},
    )
    assert_close(loss, want_loss, **tolerance("float32"))
    assert_close(grad, want_grad, **tolerance("float32"))
