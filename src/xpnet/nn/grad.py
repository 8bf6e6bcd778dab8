"""Loss and gradients of a model in one call, and a model run on arrays of your choice."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .. import functional as F
from ..functional._autodiff import (
    TrackedArray,
    backward,
    constant,
    leaf,
    map_arrays,
    new_trace,
    primal_tree,
)
from .module import Module

__all__ = ["functional_call", "grad", "loss_output_and_grads", "value_and_grad"]


@contextlib.contextmanager
def holding(
    model: Module,
    arrays: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    buffers: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """``model`` holding ``arrays`` (parameters and buffers by qualified name) inside the
    block, and its own arrays again after it, whatever happens (buffers the block replaced,
    e.g. batch-norm statistics, keep their new values unless the block failed).
    ``params`` and ``buffers``: the model's own, when the caller has them at hand."""
    params = dict(model.named_parameters()) if params is None else params
    buffers = dict(model.named_buffers()) if buffers is None else buffers
    unknown = [name for name in arrays if name not in params and name not in buffers]
    if unknown:
        raise KeyError(f"{unknown} are neither parameters nor buffers of this model")
    try:
        for name, value in arrays.items():
            if name in params:
                model.set_parameter(name, value)
            else:
                model.set_buffer(name, value)
        yield
    except BaseException:
        for name, value in buffers.items():
            model.set_buffer(name, value)
        raise
    finally:
        for name in arrays:
            if name in params:
                model.set_parameter(name, params[name])


def functional_call(module: Module, arrays: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
    """``module(*args, **kwargs)`` with some of its parameters (or buffers) replaced by
    ``arrays`` for this call only (torch's ``torch.func.functional_call``).

    With :func:`xpnet.grad`, this differentiates a model with respect to parameters you
    hold yourself::

        params = dict(model.named_parameters())
        def loss(params, x, y):
            return F.cross_entropy(nn.functional_call(model, params, x), y)
        grads = xpnet.grad(loss)(params, x, y)

    Parameters
    ----------
    module : Module
    arrays : mapping
        Qualified name to array; names the module lacks are an error.
    *args, **kwargs
        The module's inputs.

    Returns
    -------
    What ``module.forward`` returns.
    """
    if not isinstance(module, Module):
        raise TypeError(f"module: expected an xpnet Module, got {type(module).__name__}")
    with holding(module, arrays):
        return module(*args, **kwargs)


def loss_output_and_grads(
    model: Module,
    loss_fn: Callable[..., Any],
    x: Any,
    target: Any,
    *,
    train: bool | None = True,
    **loss_kwargs: Any,
) -> tuple[Any, Any, dict[str, Any]]:
    """:func:`value_and_grad`, also returning the model's output (e.g. logits for metrics).

    Returns
    -------
    loss : array
        The scalar loss.
    output : array
        ``model(x)`` (in training mode unless ``train`` says otherwise).
    grads : dict
        As :func:`value_and_grad`.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model: expected an xpnet Module, got {type(model).__name__}")
    modules = [module for _, module in model.named_modules()]
    modes = [(module, module.training) for module in modules]
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    trace = new_trace()
    leaves = {name: leaf(value, trace, f"parameter {name}") for name, value in params.items()}
    if train is not None:
        for module in modules:
            object.__setattr__(module, "training", bool(train))
    try:
        with holding(model, leaves, params, buffers):
            output = model(map_arrays(constant, x))
            loss = loss_fn(output, map_arrays(constant, target), **loss_kwargs)
            loss = _scalar_loss(loss)
            found = backward([(loss, loss._xp.ones_like(loss._value))], loss._xp)
    finally:
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
    grads = {
        name: found[tracked._node]
        for name, tracked in leaves.items()
        if tracked._node in found  # a parameter the loss does not reach has no gradient
    }
    return loss._value, primal_tree(output), grads


def _scalar_loss(result: Any) -> TrackedArray:
    if type(result) is TrackedArray:
        loss: TrackedArray = result
    else:
        if not hasattr(result, "shape"):
            raise TypeError(
                f"loss_fn: expected an array (a scalar loss), got {type(result).__name__}"
            )
        loss = constant(result)
    if loss.ndim != 0:
        raise ValueError(
            f"loss_fn: expected a scalar (0-d) loss, got shape {tuple(loss.shape)}; use "
            "reduction 'mean' or 'sum'"
        )
    return loss


def _model_value_and_grad(
    model: Module,
    loss_fn: Callable[..., Any],
    x: Any,
    target: Any,
    *,
    train: bool | None = True,
    **loss_kwargs: Any,
) -> tuple[Any, dict[str, Any]]:
    loss, _, grads = loss_output_and_grads(model, loss_fn, x, target, train=train, **loss_kwargs)
    return loss, grads


def value_and_grad(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """The loss of a model and its gradients, or a function made to return its value and
    gradient.

    Two forms:

    ``value_and_grad(model, loss_fn, x, target, *, train=True, **loss_kwargs)``
        Runs ``loss_fn(model(x), target, **loss_kwargs)`` and returns
        ``(loss, grads)``, ``grads`` mapping each trainable parameter's qualified name to
        its gradient.
    ``value_and_grad(fn, argnums=0, *, has_aux=False)``
        For a function of arrays: see :func:`xpnet.functional.value_and_grad`.

    Parameters
    ----------
    model : Module
        Its ``forward`` runs as written, with every op it calls recorded: the ops of
        :mod:`xpnet.functional` (each with its own pullback), other modules, the arrays'
        operators and indexing, and the functions of their namespace. Run in training
        mode (dropout active, batch-norm statistics updated) unless ``train`` says
        otherwise; each module's mode is restored afterwards.
    loss_fn : callable
        Called as ``loss_fn(output, target, **loss_kwargs)``; an op such as
        ``F.cross_entropy``, or any function of arrays returning a scalar.
    x, target : array (or dict / list / tuple of arrays)
        A batch of inputs and its targets; they carry no gradient.
    train : bool or None, default True
        The mode to run the model in: ``False`` differentiates it in inference mode
        (dropout off, batch norm on its running statistics), ``None`` keeps every
        module's current mode.
    **loss_kwargs
        Passed to ``loss_fn`` (e.g. ``label_smoothing=0.1``).

    Returns
    -------
    loss : array
        The scalar loss (0-d array, on the device: reading it is up to the caller).
    grads : dict
        Gradient of the loss for every trainable parameter it depends on, keyed exactly
        like the parameter entries of ``model.state_dict()`` and in the same order. A
        parameter the loss does not reach is absent (torch leaves its ``.grad`` None), so
        optimizers leave it alone.

    Raises
    ------
    ValueError
        If the loss is not a scalar (e.g. ``reduction="none"``).
    DifferentiationError
        (a ``TypeError``) If the forward or the loss writes into a recorded array, calls a
        function without a pullback on an array that carries a gradient, or reuses an array
        from another differentiation.

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
    if isinstance(fn, Module):
        return _model_value_and_grad(fn, *args, **kwargs)
    return F.value_and_grad(fn, *args, **kwargs)


def grad(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """The gradients of a model's loss, or a function made to return its gradient.

    ``grad(model, loss_fn, x, target, ...)`` returns the ``grads`` of
    :func:`value_and_grad`; ``grad(fn, argnums=0, *, has_aux=False)`` is
    :func:`xpnet.functional.grad`.
    """
    if isinstance(fn, Module):
        return _model_value_and_grad(fn, *args, **kwargs)[1]
    return F.grad(fn, *args, **kwargs)
