"""The whole training step under ``jax.jit``: forward, pullback and optimizer update.

xpnet's ops are pure functions with explicit pullbacks, so the step is a pure function of
``(parameters, buffers, optimizer state, step scalars, batch, dropout masks)`` and XLA
compiles all of it into one program. The step count and learning rate enter as arrays
(the update's scalars), so the step is traced once per input shape and optimizer state
layout, never per step.

Dropout masks are drawn on the host, from the same generators and in the same order as an
eager step would draw them, and passed in: compiled code must not bake one draw in. The
masks a model needs are discovered by tracing it once (:mod:`._masks`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from ...nn import Module
from ...nn.grad import loss_output_and_grads
from ...optim import Optimizer, ParamGroup
from ...optim._groups import flatten
from ...random import mask_source
from ._eager import correct_predictions, required_gradient
from ._masks import MaskRecorder, MaskReplay, MaskSpec, draw

__all__ = ["JaxEvaluation", "JaxStep", "output_shape"]


class _NeedMasks(Exception):
    """Raised out of a discovery trace: the model draws these dropout masks."""

    def __init__(self, requests: MaskSpec) -> None:
        super().__init__(f"{len(requests)} dropout mask(s)")
        self.requests = requests


@contextlib.contextmanager
def _installed(
    model: Module, params: Mapping[str, Any], buffers: Mapping[str, Any]
) -> Iterator[None]:
    """The model holding ``params`` and ``buffers`` (traced values) inside the block, and
    its own arrays again after it, whatever happens."""
    old_params, old_buffers = dict(model.named_parameters()), dict(model.named_buffers())
    try:
        for name, value in params.items():
            model.set_parameter(name, value)
        for name, value in buffers.items():
            model.set_buffer(name, value)
        yield
    finally:
        for name, value in old_params.items():
            model.set_parameter(name, value)
        for name, value in old_buffers.items():
            model.set_buffer(name, value)


class JaxStep:
    """A training step compiled with ``jax.jit`` (see the module docstring).

    Attributes
    ----------
    traces : int
        How many times the step was traced (once per input shape and optimizer state
        layout; a test checks that steps do not retrace).
    """

    compiled = True
    how = "jax.jit (the whole step)"

    def __init__(
        self,
        model: Module,
        optimizer: Optimizer,
        loss_fn: Callable[..., Any],
        grad_transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        import jax
        import jax.numpy as jnp

        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.grad_transform = grad_transform
        self.traces = 0
        self._jnp = jnp
        self._jitted = jax.jit(self._pure, static_argnums=(0,))
        self._masks: dict[tuple[Any, ...], MaskSpec] = {}

    def _pure(
        self,
        static: tuple[Any, ...],
        params: dict[str, Any],
        buffers: dict[str, Any],
        states: list[dict[str, Any]],
        scalars: list[dict[str, Any]],
        x: Any,
        target: Any,
        masks: list[Any] | None,
    ) -> tuple[Any, ...]:
        layout = static[0]
        self.traces += 1
        source = MaskRecorder(real=False) if masks is None else MaskReplay(masks)
        with _installed(self.model, params, buffers), mask_source(source):
            loss, output, grads = loss_output_and_grads(self.model, self.loss_fn, x, target)
            new_buffers = dict(self.model.named_buffers())
        if isinstance(source, MaskRecorder) and source.spec:
            raise _NeedMasks(source.spec)  # retraced with the masks as inputs
        if self.grad_transform is not None:
            self.grad_transform(grads)
        jnp = self._jnp
        new_params: dict[str, Any] = {}
        new_states = []
        for (index, names), state, numbers in zip(layout, states, scalars, strict=True):
            group = ParamGroup.of(list(names), params, 0, index)
            updated = dict(state)
            flat = self.optimizer.update(
                flatten(jnp, [params[n] for n in names]),
                flatten(jnp, [required_gradient(grads, n) for n in names]),
                updated,
                numbers,
                index,
            )
            new_params.update(zip(names, group.split(jnp, flat), strict=True))
            new_states.append(updated)
        return new_params, new_buffers, new_states, loss, correct_predictions(output, target)

    def _draw(self, spec: MaskSpec) -> list[Any]:
        """This call's masks, drawn as an eager step would draw them."""
        return [self._jnp.asarray(mask) for mask in draw(spec)]

    def run(self, x: Any, target: Any) -> tuple[Any, Any]:
        """One step on the batch ``(x, target)``: the loss and the number of correct
        predictions, both 0-d arrays on the device."""
        jnp, optimizer = self._jnp, self.optimizer
        params = dict(self.model.named_parameters())
        groups = optimizer.groups_for(list(params))
        for group in groups:
            optimizer.follow(group, params[group.names[0]])
        layout = tuple((group.index, group.names) for group in groups)
        settings = optimizer.settings()
        # Host 0-d arrays: jit moves them with the call (cheaper than one jnp.asarray each).
        scalars = [
            {
                key: np.asarray(value, dtype=params[group.names[0]].dtype)
                for key, value in optimizer.scalars(group.step + 1, group.index).items()
            }
            for group in groups
        ]
        for group in groups:
            if group.step == 0 and not group.state:  # one trace from the first step on
                flat = flatten(jnp, [params[name] for name in group.names])
                group.state = optimizer.initial_state(flat, group.index)
        arguments = (
            params,
            dict(self.model.named_buffers()),
            [dict(group.state) for group in groups],
            scalars,
            x,
            target,
        )
        key = (tuple(x.shape), str(x.dtype), tuple(target.shape), str(target.dtype), layout)
        spec = self._masks.get(key)
        if spec is None:
            try:
                result = self._jitted((layout, settings), *arguments, None)
                self._masks[key] = []
            except _NeedMasks as need:
                self._masks[key] = need.requests
                result = self._jitted((layout, settings), *arguments, self._draw(need.requests))
        else:
            result = self._jitted(
                (layout, settings), *arguments, self._draw(spec) if spec else None
            )
        new_params, new_buffers, new_states, loss, correct = result
        for name, value in new_params.items():
            self.model.set_parameter(name, value)
        for name, value in new_buffers.items():
            self.model.set_buffer(name, value)
        for group, state in zip(groups, new_states, strict=True):
            group.state, group.step = state, group.step + 1
            group.flat, group.views = None, ()  # the parameters are the step's outputs now
        optimizer.step_count += 1
        return loss, correct

    def __call__(self, x: Any, target: Any) -> Any:
        """One step on the batch ``(x, target)``; returns the loss (0-d, on the device)."""
        return self.run(x, target)[0]

    def __repr__(self) -> str:
        return f"JaxStep({self.how}, traced {self.traces} time(s))"


class JaxEvaluation:
    """A model's inference on one batch (summed loss, correct predictions) under
    ``jax.jit``: its parameters and buffers are inputs, so training between calls never
    retraces it.

    A batch smaller than the first one (a data set's last) is padded to its size and the
    padding masked out: one compilation serves both (measured: compiling LeNet-5's
    evaluation takes 1.1 s on a 2-core CPU, as long as a training step's).
    """

    def __init__(self, model: Module, loss_fn: Callable[..., Any]) -> None:
        import jax
        import jax.numpy as jnp

        self.model, self.loss_fn = model, loss_fn
        self._jnp = jnp
        self._jitted = jax.jit(self._pure)
        self._size: int | None = None

    def _pure(
        self, params: dict[str, Any], buffers: dict[str, Any], x: Any, target: Any, count: Any
    ) -> Any:
        jnp = self._jnp
        with _installed(self.model, params, buffers):
            output = self.model(x)
        kept = jnp.arange(x.shape[0]) < count  # inference treats every example alone
        losses = self.loss_fn(output, target, reduction="none")
        hits = (jnp.argmax(output, axis=1) == target) & kept
        return jnp.sum(jnp.where(kept, losses, 0.0)), jnp.sum(hits.astype(jnp.int64))

    def __call__(self, x: Any, target: Any) -> tuple[Any, Any]:
        jnp, n = self._jnp, int(x.shape[0])
        if self._size is None or n > self._size:
            self._size = n
        if n < self._size:
            extra = self._size - n
            x = jnp.concatenate([x, jnp.zeros((extra, *x.shape[1:]), dtype=x.dtype)])
            target = jnp.concatenate([target, jnp.zeros((extra,), dtype=target.dtype)])
        model = self.model
        result = self._jitted(
            dict(model.named_parameters()), dict(model.named_buffers()), x, target, n
        )
        return result  # type: ignore[no-any-return]


def output_shape(model: Module, x: Any) -> tuple[int, ...]:
    """The shape of ``model(x)``, from a trace (``jax.eval_shape``): nothing compiled or run."""
    import jax

    return tuple(jax.eval_shape(model, x).shape)
