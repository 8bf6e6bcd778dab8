"""The whole training step as one CUDA graph on CuPy: one launch per step.

Capture records the kernels of one step (forward, pullback, optimizer update, the copies of
the new values into static buffers) without running them; a launch replays them all. So
every array the graph touches has a fixed address:

* the inputs are copied into static buffers before each launch: the batch, the dropout
  masks (drawn on the host, from the same generators in the same order as an eager step),
  and the update's scalars (learning rate, bias corrections);
* the parameters are views of their group's flat buffer, and the optimizer state and the
  model's buffers are arrays the graph overwrites in place;
* the step's temporaries come from a memory pool of the graph's own, which nothing else
  allocates from, so no later array can land where a replay writes.

The first call for an input shape runs eagerly: it builds the cached index tables and the
optimizer state and records which dropout masks the model draws. The second captures the
graph and launches it. A capture that fails (an operation that reads the device or copies
from pageable host memory) makes the step say so and stay eager for that shape.

What the step needs from the GPU library is one small adapter (:class:`_CupyDevice`); the
test suite drives the same logic on the CPU with an adapter whose "graph" re-runs the
captured function, which checks everything here but the CUDA runtime itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import array_api_compat
import numpy as np

from ...nn import Module
from ...nn.grad import loss_output_and_grads
from ...optim import Optimizer, ParamGroup
from ...random import mask_source
from . import CompileWarning
from ._eager import EagerStep, correct_predictions, required_gradient
from ._masks import MaskRecorder, MaskReplay, MaskSpec, draw

__all__ = ["CudaGraphStep", "GraphDevice"]


class GraphDevice(Protocol):
    """What a graph-captured step needs from its GPU library."""

    def capture(self, body: Callable[[], None]) -> Any:
        """Record ``body``'s kernels as a graph (without running them)."""
        ...

    def launch(self, graph: Any) -> None:
        """Replay a captured graph on the current stream."""
        ...

    def copy_into(self, target: Any, source: Any) -> None:
        """Device copy of ``source`` into the existing array ``target``."""
        ...

    def upload(self, target: Any, host: np.ndarray) -> None:
        """Host-to-device copy into the existing array ``target``."""
        ...

    def copy(self, array: Any) -> Any:
        """A new device array equal to ``array``."""
        ...


class _CupyDevice:
    """CuPy's stream capture, with a memory pool of the graph's own for its temporaries."""

    def __init__(self) -> None:
        import cupy

        self.cupy = cupy
        self.pools: list[Any] = []  # kept alive with the graphs that use their memory

    def capture(self, body: Callable[[], None]) -> Any:
        cupy = self.cupy
        pool = cupy.cuda.MemoryPool()
        stream = cupy.cuda.Stream(non_blocking=True)
        cupy.cuda.get_current_stream().synchronize()
        with cupy.cuda.using_allocator(pool.malloc), stream:
            stream.begin_capture()
            try:
                body()
            finally:
                graph = stream.end_capture()
        self.pools.append((pool, stream))
        return graph

    def launch(self, graph: Any) -> None:
        graph.launch(self.cupy.cuda.get_current_stream())

    def copy_into(self, target: Any, source: Any) -> None:
        self.cupy.copyto(target, source)

    def upload(self, target: Any, host: np.ndarray) -> None:
        target.set(np.ascontiguousarray(host, dtype=target.dtype))

    def copy(self, array: Any) -> Any:
        return array.copy()


@dataclass
class _Captured:
    """A captured step and the static buffers it reads and writes."""

    graph: Any
    x: Any
    target: Any
    mask_spec: MaskSpec
    masks: list[Any]
    scalars: list[dict[str, Any]]
    groups: list[ParamGroup]
    buffers: dict[str, Any]
    loss: Any
    correct: Any
    keep: list[Any] = field(default_factory=list)


class CudaGraphStep:
    """A training step replayed as one CUDA graph (see the module docstring).

    Parameters
    ----------
    model, optimizer, loss_fn
        As for :func:`xpnet.compile_step`.
    device : GraphDevice, optional
        The GPU library's capture and copies; CuPy's by default.
    """

    compiled = True
    how = "CUDA graph (the whole step, one launch)"

    def __init__(
        self,
        model: Module,
        optimizer: Optimizer,
        loss_fn: Callable[..., Any],
        device: GraphDevice | None = None,
        grad_transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.grad_transform = grad_transform
        self.device: GraphDevice = device if device is not None else _CupyDevice()
        self._eager = EagerStep(model, optimizer, loss_fn, "warm-up before capture", grad_transform)
        self._graphs: dict[tuple[Any, ...], _Captured | None] = {}
        self._specs: dict[tuple[Any, ...], MaskSpec] = {}

    def _key(self, x: Any, target: Any) -> tuple[Any, ...]:
        return (
            tuple(x.shape), str(x.dtype), tuple(target.shape), str(target.dtype),
            tuple(name for name, _ in self.model.named_parameters()),
            self.optimizer.settings(),
        )  # fmt: skip

    def run(self, x: Any, target: Any) -> tuple[Any, Any]:
        """One step on the batch ``(x, target)``: the loss and the number of correct
        predictions, both 0-d arrays on the device."""
        key = self._key(x, target)
        captured = self._graphs.get(key)
        if captured is not None and not self._still_valid(captured):
            del self._graphs[key]  # the optimizer's state was replaced: warm up anew
            self._specs.pop(key, None)
        if key not in self._specs:  # warm-up: caches, optimizer state, the masks drawn
            recorder = MaskRecorder(real=True)
            with mask_source(recorder):
                result = self._eager.run(x, target)
            self._specs[key] = recorder.spec
            return result
        if key not in self._graphs:
            try:
                self._graphs[key] = self._capture(x, target, self._specs[key])
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

    def _capture(self, x: Any, target: Any, spec: MaskSpec) -> _Captured:
        device, optimizer, model = self.device, self.optimizer, self.model
        params = dict(model.named_parameters())
        groups = optimizer.groups_for(list(params))
        xp, on = array_api_compat.array_namespace(x), array_api_compat.device(x)
        for group in groups:
            # The model's parameters become views of the group's flat buffer, which the
            # graph overwrites in place; the warm-up step made the state complete. Each
            # state array gets its own buffer: eager steps may share one between slots
            # (Adam's first AMSGrad maximum is its second moment), in place they must not.
            optimizer.assign(group, xp, group.flat_params(params))
            group.state = {slot: device.copy(value) for slot, value in group.state.items()}
        first = params[groups[0].names[0]]
        static_x, static_target = device.copy(x), device.copy(target)
        masks = [xp.zeros(shape, dtype=xp.bool, device=on) for _, shape, _ in spec]
        scalars = [
            {
                k: xp.zeros((), dtype=first.dtype, device=on)
                for k in optimizer.scalars(1, group.index)
            }
            for group in groups
        ]
        grads_flat = [xp.zeros_like(group.flat) for group in groups]
        statics = {name: device.copy(value) for name, value in model.named_buffers()}
        for name, value in statics.items():
            model.set_buffer(name, value)
        loss_out = xp.zeros((), dtype=first.dtype, device=on)
        correct_out = xp.zeros((), dtype=xp.int64, device=on)
        loss_fn = self.loss_fn

        def body() -> None:
            with mask_source(MaskReplay(masks)):
                loss, output, grads = loss_output_and_grads(model, loss_fn, static_x, static_target)
            if self.grad_transform is not None:
                self.grad_transform(grads)
            for name, value in model.named_buffers():
                device.copy_into(statics[name], value)
                model.set_buffer(name, statics[name])
            for group, flat_grad, numbers in zip(groups, grads_flat, scalars, strict=True):
                for name, view in zip(group.names, group.split(xp, flat_grad), strict=True):
                    # not concat: it would transfer
                    device.copy_into(view, required_gradient(grads, name))
                state = dict(group.state)
                new = optimizer.update(group.flat, flat_grad, state, numbers, group.index)
                device.copy_into(group.flat, new)
                for slot, value in state.items():
                    device.copy_into(group.state[slot], value)
            device.copy_into(loss_out, loss)
            device.copy_into(correct_out, correct_predictions(output, static_target))

        try:
            graph = device.capture(body)
        finally:
            for name, value in statics.items():  # capture ran the Python, not the kernels
                model.set_buffer(name, value)
        return _Captured(graph, static_x, static_target, spec, masks, scalars, groups,
                         statics, loss_out, correct_out, [grads_flat])  # fmt: skip

    def _still_valid(self, captured: _Captured) -> bool:
        """Whether the optimizer still holds the state arrays the graph updates; model
        parameters and buffers replaced meanwhile (``load_state_dict``) are copied into
        the graph's own."""
        groups = self.optimizer.groups_for([name for name, _ in self.model.named_parameters()])
        if len(groups) != len(captured.groups) or any(
            a is not b for a, b in zip(groups, captured.groups, strict=True)
        ):
            return False
        params = dict(self.model.named_parameters())
        for group in groups:
            for name, view in zip(group.names, group.views, strict=True):
                if params[name] is not view:
                    self.device.copy_into(view, params[name])
                    self.model.set_parameter(name, view)
        for name, value in self.model.named_buffers():
            static = captured.buffers.get(name)
            if static is not None and value is not static:
                self.device.copy_into(static, value)
                self.model.set_buffer(name, static)
        return True

    def _launch(self, captured: _Captured, x: Any, target: Any) -> tuple[Any, Any]:
        device, optimizer = self.device, self.optimizer
        device.copy_into(captured.x, x)
        device.copy_into(captured.target, target)
        for buffer, mask in zip(captured.masks, draw(captured.mask_spec), strict=True):
            device.upload(buffer, mask)
        for group, numbers in zip(captured.groups, captured.scalars, strict=True):
            for key, value in optimizer.scalars(group.step + 1, group.index).items():
                device.upload(numbers[key], np.asarray(value))
        device.launch(captured.graph)
        for group in captured.groups:
            group.step += 1
        optimizer.step_count += 1
        # The graph overwrites its outputs at the next launch: hand out copies.
        return device.copy(captured.loss), device.copy(captured.correct)

    def __call__(self, x: Any, target: Any) -> Any:
        """One step on the batch ``(x, target)``; returns the loss (0-d, on the device)."""
        return self.run(x, target)[0]

    def __repr__(self) -> str:
        return f"CudaGraphStep({self.how})"
