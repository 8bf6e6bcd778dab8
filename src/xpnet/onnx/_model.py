"""An ONNX graph as an xpnet :class:`~xpnet.nn.Module`."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .. import backends
from ..functional._autodiff import primal
from ..nn import Module
from ..nn.module import rewrapped
from ._errors import OnnxImportError, UnsupportedOnnxError
from ._ops import OPERATORS, Call, Host
from ._reader import GraphSpec

__all__ = ["OnnxModel"]

#: The ONNX inputs a batch norm reads its running statistics from (its state).
_RUNNING_STATISTICS = {("BatchNormalization", 3), ("BatchNormalization", 4)}


class _Group(Module):
    """A namespace for the initializers whose names share a dotted prefix (``layer1.0``),
    so that ``state_dict`` keys are the initializer names."""


class OnnxModel(Module):
    """An imported ONNX graph: ``forward`` runs its nodes through xpnet's ops.

    Made by :func:`xpnet.onnx.load`. Float initializers read as data become parameters (so
    ``state_dict``, checkpoints, optimizers and :func:`xpnet.fit` work on it), the batch
    norms' running statistics become buffers, and initializers read only as shapes, axes or
    scales stay constants. ``state_dict`` keys are the initializer names where they can be
    (see :attr:`initializer_keys`). The model starts in evaluation mode, as a graph
    exported for inference expects; ``train()`` turns batch norm and dropout to training.

    Attributes
    ----------
    graph : GraphSpec
        The checked graph: opset, nodes, inputs and outputs.
    initializer_keys : dict of str to str
        Each trainable or state initializer's ``state_dict`` key.
    """

    def __init__(self, graph: GraphSpec) -> None:
        super().__init__()
        self.graph = graph
        _check_operators(graph)
        roles = _initializer_roles(graph)
        self._constants: dict[str, Host] = {}
        self._slots: dict[str, tuple[str, Module, str]] = {}
        keys: dict[str, str] = {}
        for name, value in graph.initializers.items():
            role = roles.get(name, "constant")
            if role == "constant":
                self._constants[name] = Host(value)
                continue
            key = _state_key(self, name, keys)
            owner, _, leaf = key.rpartition(".")
            module = _group(self, owner)
            array = backends.asarray(np.array(value))
            if role == "parameter":
                module.register_parameter(leaf, array)
            else:
                module.register_buffer(leaf, array)
            self._slots[name] = (role, module, leaf)
            keys[name] = key
        self.initializer_keys = keys
        self._release = _last_reads(graph)
        self.eval()

    def forward(self, *inputs: Any, **named: Any) -> Any:
        """Run the graph on ``inputs`` (in the graph's input order) or inputs by name;
        returns its output, or a tuple of its outputs."""
        graph = self.graph
        env: dict[str, Any] = dict(self._constants)
        for name, (role, module, leaf) in self._slots.items():
            table = module._parameters if role == "parameter" else module._buffers
            env[name] = table[leaf]
        env.update(self._feeds(inputs, named))
        # IEEE results without NumPy's warnings (a square root of a negative is NaN, as in
        # every ONNX runtime), on the host and on the NumPy backend alike.
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            self._run(env)
        like = next((v for v in env.values() if not isinstance(v, Host)), None)
        outputs = [
            _place(env[name].value, like) if isinstance(env[name], Host) else env[name]
            for name in graph.outputs
        ]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _run(self, env: dict[str, Any]) -> None:
        """Run every node, adding its outputs to ``env``."""
        graph = self.graph
        for node in graph.nodes:
            definition = OPERATORS[node.op_type]
            values = [env[name] if name else None for name in node.inputs]
            given = [v for v in values if v is not None]
            on_host = (
                definition.foldable and bool(given) and all(isinstance(v, Host) for v in given)
            )

            def update(index: int, value: Any, node: Any = node) -> None:
                slot = self._slots.get(node.inputs[index])
                if self.training and slot is not None and slot[0] == "buffer":
                    slot[1]._buffers[slot[2]] = primal(value)

            call = Call(node, graph.source, graph.opset, values, on_host, _place,
                        self.training, update)  # fmt: skip
            try:
                result = definition.fn(call)
            except OnnxImportError:
                raise
            except (ValueError, TypeError, IndexError) as exc:
                raise rewrapped(exc, call.where()) from exc
            results = result if isinstance(result, tuple) else (result,)
            wanted = [name for name in node.outputs if name]
            if len(results) < len(node.outputs) and len(wanted) > len(results):
                raise UnsupportedOnnxError(
                    f"{call.where()}: {len(node.outputs)} outputs asked, {len(results)} computed"
                )
            for name, value in zip(node.outputs, results, strict=False):
                if name:
                    env[name] = Host(value) if on_host and not isinstance(value, Host) else value
            for name in self._release[node.index]:  # read for the last time: let it go
                env.pop(name, None)

    def _feeds(self, inputs: tuple[Any, ...], named: dict[str, Any]) -> dict[str, Any]:
        expected = self.graph.inputs
        if len(inputs) > len(expected):
            raise TypeError(
                f"{self.graph.source}: the graph takes {len(expected)} input(s) "
                f"{list(expected)}, got {len(inputs)}"
            )
        feeds = dict(zip(expected, inputs, strict=False))
        for name, value in named.items():
            if name not in expected:
                raise TypeError(f"{self.graph.source}: no graph input named {name!r}; "
                                f"inputs: {list(expected)}")  # fmt: skip
            if name in feeds:
                raise TypeError(f"{self.graph.source}: input {name!r} given twice")
            feeds[name] = value
        missing = [name for name in expected if name not in feeds]
        if missing:
            raise TypeError(f"{self.graph.source}: missing graph input(s) {missing}")
        for name, value in feeds.items():
            if isinstance(
                value, (np.ndarray, np.generic)
            ) and not array_api_compat.is_numpy_namespace(backends.get_namespace()):
                feeds[name] = backends.asarray(value)
        return feeds

    def extra_repr(self) -> str:
        graph = self.graph
        return (
            f"{graph.source}, opset {graph.opset}, {len(graph.nodes)} nodes, "
            f"inputs {list(graph.inputs)}, outputs {list(graph.outputs)}"
        )


def _place(value: np.ndarray, like: Any) -> Any:
    """A host value as an array of ``like``'s namespace and device (the active backend's
    when there is none)."""
    if like is None:
        return backends.asarray(np.array(value))
    reference = primal(like)
    xp = array_api_compat.array_namespace(reference)
    return xp.asarray(np.array(value), device=array_api_compat.device(reference))


def _last_reads(graph: GraphSpec) -> list[tuple[str, ...]]:
    """For each node, the values it is the last to read (graph outputs excepted): dropped
    once it has run, so that a forward pass holds each activation only as long as a
    hand-written one would (recording keeps what the gradients need)."""
    last: dict[str, int] = {}
    for node in graph.nodes:
        for name in node.inputs:
            if name:
                last[name] = node.index
    keep = set(graph.outputs)
    release: list[list[str]] = [[] for _ in graph.nodes]
    for name, index in last.items():
        if name not in keep:
            release[index].append(name)
    return [tuple(names) for names in release]


def _check_operators(graph: GraphSpec) -> None:
    missing = [node for node in graph.nodes if node.op_type not in OPERATORS]
    if missing:
        listed = ", ".join(node.label for node in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        kinds = sorted({node.op_type for node in missing})
        raise UnsupportedOnnxError(
            f"{graph.source}: operator(s) {', '.join(kinds)} not supported (opset "
            f"{graph.opset}): {listed}{more}. Supported: see xpnet.onnx.supported_operators()"
        )


def _initializer_roles(graph: GraphSpec) -> dict[str, str]:
    """``parameter``, ``buffer`` or ``constant`` for each initializer, from where the
    nodes read it: float values read as data train; a batch norm's statistics are state;
    integers, and floats read only as shapes or scales, are constants."""
    reads: dict[str, set[str]] = {}
    for node in graph.nodes:
        host_inputs = OPERATORS[node.op_type].host_inputs
        for index, name in enumerate(node.inputs):
            if name not in graph.initializers:
                continue
            if (node.op_type, index) in _RUNNING_STATISTICS:
                kind = "buffer"
                value = graph.initializers[name]
                if index == 4 and value.dtype.kind == "f" and bool((value < 0).any()):
                    # sqrt(var + eps) of a negative variance: NaN in every output.
                    raise OnnxImportError(
                        f"{graph.source}: {node.label}: its variance {name!r} holds negative "
                        "values; the model is damaged"
                    )
            elif index in host_inputs or node.op_type == "Shape":
                kind = "constant"
            else:
                kind = "parameter"
            reads.setdefault(name, set()).add(kind)
    roles = {}
    for name, kinds in reads.items():
        if graph.initializers[name].dtype.kind != "f":
            roles[name] = "constant"
        elif "parameter" in kinds:
            roles[name] = "parameter"
        elif "buffer" in kinds:
            roles[name] = "buffer"
        else:
            roles[name] = "constant"
    return roles


def _state_key(model: Module, name: str, taken: dict[str, str]) -> str:
    """The ``state_dict`` key of initializer ``name``: the name itself where its dotted
    parts can be module and array names, else the name with its dots as underscores."""
    parts = name.split(".")
    if all(parts):
        owner = model
        fits = True
        for part in parts[:-1]:
            child = owner._modules.get(part)
            if part in owner._parameters or part in owner._buffers:
                fits = False
                break
            if child is None:
                break
            owner = child
        used = set(taken.values())
        prefixes = {key.rsplit(".", 1)[0] for key in used if "." in key}
        if fits and name not in used and name not in prefixes:
            return name
    flat = name.replace(".", "_") or "initializer"
    key, counter = flat, 1
    while key in taken.values() or key in model._modules:
        counter += 1
        key = f"{flat}_{counter}"
    return key


def _group(model: Module, path: str) -> Module:
    """The module at dotted ``path`` under ``model``, made of :class:`_Group` s as needed."""
    module = model
    for part in path.split(".") if path else []:
        child = module._modules.get(part)
        if child is None:
            child = _Group()
            module.register_module(part, child)
        module = child
    return module
