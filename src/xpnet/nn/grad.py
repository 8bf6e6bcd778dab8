"""Loss and gradients of a model in one call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat

from .. import functional as F
from .module import Module, forward_vjp

__all__ = ["loss_output_and_grads", "value_and_grad"]


def loss_output_and_grads(
    model: Module, loss_fn: Callable[..., Any], x: Any, target: Any, **loss_kwargs: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """:func:`value_and_grad`, also returning the model's output (e.g. logits for metrics).

    Returns
    -------
    loss : array
        The scalar loss.
    output : array
        ``model(x)`` in training mode.
    grads : dict
        As :func:`value_and_grad`.
    """
    modes = [(module, module.training) for _, module in model.modules()]
    # Buffers are replaced, never modified, so keeping references is a snapshot: a call
    # that fails (bad shapes, a non-scalar loss) leaves the batch-norm statistics as they were.
    buffers = model.named_buffers()
    model.train()
    try:
        output, model_pullback = forward_vjp(model, x, input_grad=False)
        loss, loss_pullback = F.vjp(loss_fn, output, target, **loss_kwargs)
        if not array_api_compat.is_array_api_obj(loss) or loss.ndim != 0:
            shape = tuple(getattr(loss, "shape", ()))
            raise ValueError(
                f"loss_fn: expected a scalar (0-d) loss, got shape {shape}; use reduction "
                "'mean' or 'sum'"
            )
    except BaseException:
        for name, value in buffers.items():
            model.set_buffer(name, value)
        raise
    finally:
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
    dlogits = loss_pullback(array_api_compat.array_namespace(loss).ones_like(loss))[0]
    _, grads = model_pullback(dlogits)
    # The pullback collects gradients last layer first; give them the state_dict's order.
    ordered = {name: grads[name] for name in model.named_parameters() if name in grads}
    return loss, output, ordered


def value_and_grad(
    model: Module, loss_fn: Callable[..., Any], x: Any, target: Any, **loss_kwargs: Any
) -> tuple[Any, dict[str, Any]]:
    """Run the model in training mode on ``x``, then pull the loss gradient back.

    Parameters
    ----------
    model : Module
        Run in training mode (dropout active, batch-norm statistics updated); each
        module's mode is restored afterwards.
    loss_fn : callable
        An op of :mod:`xpnet.functional` with a pullback, such as ``F.cross_entropy``,
        called as ``loss_fn(model(x), target, **loss_kwargs)`` and returning a scalar.
    x, target : array
        A batch of inputs and its targets.
    **loss_kwargs
        Passed to ``loss_fn`` (e.g. ``label_smoothing=0.1``).

    Returns
    -------
    loss : array
        The scalar loss (0-d array, on the device: reading it is up to the caller).
    grads : dict
        Gradient of the loss for every trainable parameter, keyed exactly like the
        parameter entries of ``model.state_dict()`` and in the same order.

    Raises
    ------
    ValueError
        If the loss is not a scalar (e.g. ``reduction="none"``).

    Notes
    -----
    Nothing here reads a value back to the host, so on a GPU the call queues its work
    and returns. Checks that would need such a read (class targets in range) run only
    where it is free; see :func:`xpnet.config.value_checks`.

    Examples
    --------
    >>> import numpy as np, xpnet, xpnet.functional as F
    >>> from xpnet import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, rng=0))
    >>> x = xpnet.asarray(np.ones((2, 1, 2, 2)), dtype="float32")
    >>> loss, grads = xpnet.value_and_grad(model, F.cross_entropy, x, xpnet.asarray([0, 2]))
    >>> loss.shape, list(grads), grads["1.weight"].shape
    ((), ['1.weight', '1.bias'], (3, 4))
    """
    loss, _, grads = loss_output_and_grads(model, loss_fn, x, target, **loss_kwargs)
    return loss, grads
