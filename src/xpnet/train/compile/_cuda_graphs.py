"""The whole training step as one CUDA graph on CuPy: one launch per step.

Capture records the kernels of one step (forward, pullback, optimizer update, the copies
of the new values into static buffers) without running them; a launch replays them all.
So every array the graph touches has a fixed address:

* the inputs are copied into static buffers before each launch (the batch; the dropout
  masks, drawn on the host as an eager step would; the update's scalars);
* the parameters are views of their group's flat buffer, and the optimizer state and the
  model's buffers are arrays the graph overwrites in place;
* the step's temporaries come from a memory pool of the graph's own, which nothing else
  allocates from, so no later array can land where a replay writes.

The first call of a given input shape runs eagerly (it builds the cached index tables and
the optimizer state), the second captures the graph and launches it. Anything that cannot
be captured (a host read, a transfer from pageable memory) makes the step say so once and
stay eager for that shape.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...nn import Module
from ...nn.grad import loss_output_and_grads
from ...optim import Optimizer, ParamGroup
from ...random import mask_source, resolve_rng
from . import CompileWarning
from ._eager import EagerStep, correct_predictions

__all__ = ["CudaGraphStep"]


@dataclass
class _Captured:
    """A captured step and the static buffers it reads and writes."""

    graph: Any
    pool: Any
    x: Any
    target: Any
    masks: list[tuple[Any, tuple[int, ...], float, Any]]
    scalars: list[dict[str, Any]]
    groups: list[ParamGroup]
    buffers: dict[str, Any]
    loss: Any
    correct: Any
    keep: list[Any] = field(default_factory=list)


class _StaticMasks:
    """During capture: hands out static mask buffers (refilled before every launch)."""

    def __init__(self, cupy: Any) -> None:
        self.cupy = cupy
        self.masks: list[tuple[Any, tuple[int, ...], float, Any]] = []

    def keep_mask(self, rng: Any, shape: tuple[int, ...], p: float) -> Any:
        buffer = self.cupy.empty(shape, dtype=bool)
        self.masks.append((rng, tuple(shape), float(p), buffer))
        return buffer


class CudaGraphStep:
    """A training step replayed as one CUDA graph on CuPy (see the module docstring)."""

    compiled = True
    how = "CUDA graph (the whole step, one launch)"

    def __init__(self, model: Module, optimizer: Optimizer, loss_fn: Callable[..., Any]) -> None:
        import cupy

        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self._cupy = cupy
        self._eager = EagerStep(model, optimizer, loss_fn, "warm-up before capture")
        self._graphs: dict[tuple[Any, ...], _Captured | None] = {}
        self._seen: set[tuple[Any, ...]] = set()

    def _key(self, x: Any, target: Any) -> tuple[Any, ...]:
        settings = self.optimizer.hyperparameters()
        return (
            tuple(x.shape), str(x.dtype), tuple(target.shape), str(target.dtype),
            tuple(self.model.named_parameters()),
            tuple(sorted((k, v) for k, v in settings.items() if k != "lr")),
        )  # fmt: skip

    def _capture(self, x: Any, target: Any) -> _Captured:
        cupy, optimizer, model = self._cupy, self.optimizer, self.model
        params = model.named_parameters()
        groups = optimizer.groups_for(list(params))
        for group in groups:
            # The model's parameters must be views of the group's flat buffer, and the
            # state complete (the eager warm-up step made both).
            group.flat = group.flat_params(params)
            optimizer.assign(group, cupy, group.flat)
        static_x, static_target = cupy.array(x, copy=True), cupy.array(target, copy=True)
        scalars = [
            {k: cupy.zeros((), dtype=group.flat.dtype) for k in optimizer.scalars(1)}
            for group in groups
        ]
        grads_flat = [cupy.empty_like(group.flat) for group in groups]
        buffers = model.named_buffers()
        statics = {name: cupy.array(value, copy=True) for name, value in buffers.items()}
        for name, value in statics.items():
            model.set_buffer(name, value)
        masks = _StaticMasks(cupy)
        loss_out = cupy.zeros((), dtype=groups[0].flat.dtype)
        correct_out = cupy.zeros((), dtype=cupy.int64)
        pool = cupy.cuda.MemoryPool()
        stream = cupy.cuda.Stream(non_blocking=True)
        cupy.cuda.get_current_stream().synchronize()
        keep: list[Any] = []
        with cupy.cuda.using_allocator(pool.malloc), stream:
            stream.begin_capture()
            try:
                with mask_source(masks):
                    loss, output, grads = loss_output_and_grads(model, self.loss_fn, static_x,
                                                                static_target)  # fmt: skip
                for name, value in model.named_buffers().items():
                    cupy.copyto(statics[name], value)
                for group, flat_grad, numbers in zip(groups, grads_flat, scalars, strict=True):
                    for name, view in zip(group.names, group.split(cupy, flat_grad), strict=True):
                        cupy.copyto(view, grads[name])  # no concatenate: it would transfer
                    state = dict(group.state)
                    new = optimizer.update(group.flat, flat_grad, state, numbers)
                    cupy.copyto(group.flat, new)
                    for slot, value in state.items():
                        cupy.copyto(group.state[slot], value)
                cupy.copyto(loss_out, loss)
                cupy.copyto(correct_out, correct_predictions(output, static_target))
            finally:
                graph = stream.end_capture()
                for name, value in statics.items():
                    model.set_buffer(name, value)
        keep.extend([grads_flat, stream])
        return _Captured(graph, pool, static_x, static_target, masks.masks, scalars, groups,
                         statics, loss_out, correct_out, keep)  # fmt: skip

    def run(self, x: Any, target: Any) -> tuple[Any, Any]:
        """One step on the batch ``(x, target)``: the loss and the number of correct
        predictions, both 0-d arrays on the device."""
        key = self._key(x, target)
        captured = self._graphs.get(key)
        if captured is not None and not self._still_valid(captured):
            del self._graphs[key]  # the optimizer's state was replaced: capture anew
            self._seen.discard(key)
        if key not in self._seen:
            self._seen.add(key)
            return self._eager.run(x, target)  # warm-up: caches, optimizer state
        if key not in self._graphs:
            try:
                self._graphs[key] = self._capture(x, target)
            except Exception as exc:  # an op that cannot be captured: stay eager
                self._graphs[key] = None
                warnings.warn(
                    f"compile_step: CUDA graph capture failed ({type(exc).__name__}: {exc}); "
                    "running this input shape eagerly",
                    CompileWarning,
                    stacklevel=2,
                )
        captured = self._graphs[key]
        if captured is None:
            return self._eager.run(x, target)
        return self._launch(captured, x, target)

    def _still_valid(self, captured: _Captured) -> bool:
        """Whether the optimizer still holds the state arrays the graph updates; model
        parameters and buffers replaced meanwhile are copied into the graph's."""
        groups = self.optimizer.groups_for(list(self.model.named_parameters()))
        if len(groups) != len(captured.groups) or any(
            a is not b or a.flat is None for a, b in zip(groups, captured.groups, strict=True)
        ):
            return False
        params = self.model.named_parameters()
        for group in groups:
            for name, view in zip(group.names, group.views, strict=True):
                if params[name] is not view:  # e.g. load_state_dict: take its values
                    self._cupy.copyto(view, params[name])
                    self.model.set_parameter(name, view)
        for name, value in self.model.named_buffers().items():
            static = captured.buffers.get(name)
            if static is not None and value is not static:
                self._cupy.copyto(static, value)
                self.model.set_buffer(name, static)
        return True

    def _launch(self, captured: _Captured, x: Any, target: Any) -> tuple[Any, Any]:
        cupy, optimizer = self._cupy, self.optimizer
        cupy.copyto(captured.x, x)
        cupy.copyto(captured.target, target)
        for rng, shape, p, buffer in captured.masks:
            buffer.set(resolve_rng(rng).random(size=shape) >= p)
        for group, numbers in zip(captured.groups, captured.scalars, strict=True):
            for key, value in optimizer.scalars(group.step + 1).items():
                numbers[key].set(np.asarray(value, dtype=numbers[key].dtype))
        captured.graph.launch(cupy.cuda.get_current_stream())
        for group in captured.groups:
            group.step += 1
        optimizer.step_count += 1
        # The graph overwrites its outputs at the next launch: hand out copies.
        return captured.loss.copy(), captured.correct.copy()

    def __call__(self, x: Any, target: Any) -> Any:
        """One step on the batch ``(x, target)``; returns the loss (0-d, on the device)."""
        return self.run(x, target)[0]

    def __repr__(self) -> str:
        return f"CudaGraphStep({self.how})"
