"""``xpnet.onnx.export``: an xpnet model as an ONNX graph (see :mod:`._graph`)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import array_api_compat

from ..._atomic import replacing
from ..._numbers import integer
from ..._version import __version__
from ...nn.module import Module, call_observer
from .._errors import OnnxExportError
from . import _primitives  # registers the export of xpnet.functional's ops
from ._graph import ExportArray, Graph, onnx_type, tracing

__all__ = ["DEFAULT_EXPORT_OPSET", "EXPORT_OPSETS", "export"]

del _primitives

#: The opsets :func:`export` writes; each op is written in its form for the opset asked.
EXPORT_OPSETS = range(13, 22)
#: What :func:`export` writes unless asked otherwise (what onnxruntime 1.14 and later run).
DEFAULT_EXPORT_OPSET = 17

#: Protobuf's limit on one message; larger models need external data, not written here.
_PROTOBUF_LIMIT = 2**31 - 1


def _names(given: Sequence[str] | None, count: int, stem: str, what: str) -> list[str]:
    if given is None:
        return [stem] if count == 1 else [f"{stem}_{i}" for i in range(count)]
    names = list(given) if not isinstance(given, str) else [given]
    if len(names) != count or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{what}: expected {count} non-empty name(s), got {given!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: names must differ, got {names}")
    return names


def export(
    model: Module,
    example_input: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    opset: int = DEFAULT_EXPORT_OPSET,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_batch: bool = True,
    metadata: Mapping[str, str] | None = None,
    check: bool = True,
) -> Any:
    """Write ``model`` as an ONNX graph: one node per layer, the parameters as initializers.

    The model runs once on ``example_input`` in evaluation mode (batch norm on its running
    statistics, dropout off; each module's mode is restored afterwards). Its own
    ``forward`` is traced, so a model of your own (a residual add, a concatenated skip, a
    reshape) exports as well as the stock ones. Every op of :mod:`xpnet.functional` becomes
    its ONNX operator (``conv2d`` a ``Conv``, ``batch_norm`` a ``BatchNormalization``), and
    the array functions and operators the model applies to its activations become theirs.

    Parameters
    ----------
    model : Module
        The model; its parameters and buffers become initializers named by their
        ``state_dict`` keys (so :func:`xpnet.onnx.load` gives the same keys back).
    example_input : array or tuple of arrays
        Inputs on the model's backend, of the dtype and (but for the batch) shape the
        graph will take.
    path : str or os.PathLike, optional
        Where to write the ``.onnx`` file (whole or not at all). ``None``: write nothing.
    opset : int, default 17
        The default domain's opset, from 13 to 21. Ops ONNX added later (``Gelu`` at 20,
        ``GroupNormalization`` at 21, ``Mish`` at 18, ...) are written as exact
        compositions below theirs.
    input_names, output_names : sequence of str, optional
        Names of the graph's inputs and outputs (default ``input``/``output``, numbered
        when there are several).
    dynamic_batch : bool, default True
        Leave the first axis of the inputs (and of the outputs that follow it) symbolic.
        Where the model turns the batch size into a number the graph would keep (e.g.
        ``x.reshape(8, -1)``), the batch is fixed to the example's, with a warning naming
        where.
    metadata : mapping of str to str, optional
        Written as the model's ``metadata_props`` (e.g. how inputs are normalised).
    check : bool, default True
        Run ``onnx.checker`` (with shape inference) on the graph before returning it.

    Returns
    -------
    onnx.ModelProto
        The model written.

    Raises
    ------
    OnnxExportError
        The model computes something ONNX cannot express as traced (an op with no ONNX form,
        a Python decision on an array's value, an in-place write); the message names it.
    TypeError, ValueError
        A bad argument, named.
    ImportError
        The ``onnx`` package is missing (``pip install 'xpnet[onnx]'``).

    Examples
    --------
    >>> import xpnet, xpnet.onnx
    >>> model = xpnet.models.lenet5()
    >>> proto = xpnet.onnx.export(model, xpnet.zeros((1, 1, 28, 28)))  # doctest: +SKIP
    >>> [node.op_type for node in proto.graph.node][:3]                 # doctest: +SKIP
    ['Conv', 'Relu', 'MaxPool']
    """
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - the extra is installed where tested
        raise ImportError(
            "xpnet.onnx.export needs the onnx package: pip install 'xpnet[onnx]'"
        ) from exc
    if not isinstance(model, Module):
        raise TypeError(f"model: expected an xpnet Module, got {type(model).__name__}")
    if integer(opset) is None or opset not in EXPORT_OPSETS:
        raise ValueError(
            f"opset: expected an int from {EXPORT_OPSETS.start} to {EXPORT_OPSETS.stop - 1}, "
            f"got {opset!r}"
        )
    inputs = list(example_input) if isinstance(example_input, tuple | list) else [example_input]
    if not inputs:
        raise ValueError("example_input: expected an array or a tuple of arrays, got none")
    for i, value in enumerate(inputs):
        if type(value) is ExportArray or not array_api_compat.is_array_api_obj(value):
            where = "example_input" + (f"[{i}]" if len(inputs) > 1 else "")
            raise TypeError(f"{where}: expected an array, got {type(value).__name__}")
    in_names = _names(input_names, len(inputs), "input", "input_names")
    if metadata is not None and not (
        isinstance(metadata, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise TypeError(f"metadata: expected a mapping of str to str, got {metadata!r}")
    xp = array_api_compat.array_namespace(inputs[0])
    graph = Graph(xp, opset)
    for name in in_names:
        graph.reserve(name)
    traced_inputs = [
        graph.wrap(value, name, 0 if value.ndim else None)
        for value, name in zip(inputs, in_names, strict=True)
    ]
    if traced_inputs[0].ndim:
        graph.batch_source = (in_names[0], 0)
    outputs = _trace(model, graph, traced_inputs)
    out_names = _names(output_names, len(outputs), "output", "output_names")
    overlap = set(out_names) & set(in_names)
    if overlap:
        raise ValueError(f"output_names: {sorted(overlap)} are also input names")
    if dynamic_batch and graph.fixed_batch:
        warnings.warn(
            "xpnet.onnx.export: the batch dimension is fixed to the example's "
            f"({int(inputs[0].shape[0])}) because the model uses the batch size as a number: "
            + "; ".join(graph.fixed_batch),
            UserWarning,
            stacklevel=2,
        )
    dynamic = dynamic_batch and not graph.fixed_batch
    proto = _model_proto(onnx, graph, traced_inputs, outputs, out_names, dynamic, opset)
    if metadata:
        onnx.helper.set_model_props(proto, dict(metadata))
    if proto.ByteSize() > _PROTOBUF_LIMIT:
        raise OnnxExportError(
            "the model is larger than 2 GiB, protobuf's limit for one ONNX file; xpnet does "
            "not write external data"
        )
    if check:
        try:
            onnx.checker.check_model(proto, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            raise OnnxExportError(f"the exported graph fails onnx.checker: {exc}") from exc
    if path is not None:
        with replacing(path) as stream:
            stream.write(proto.SerializeToString())
    return proto


def _trace(model: Module, graph: Graph, inputs: list[ExportArray]) -> list[ExportArray]:
    """Run ``model`` on the traced inputs (parameters and buffers traced too, eval mode)."""
    modules = list(model.named_modules())
    scopes = {id(module): name for name, module in reversed(modules)}
    modes = [(module, module.training) for _, module in modules]
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    held: dict[str, ExportArray] = {}
    for table in (params, buffers):
        for key, value in table.items():
            if value is not None:
                graph.reserve(key)
                held[key] = graph.wrap(value, key, None)

    def observe(module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        scope = scopes.get(id(module), "")
        if not scope:
            return module.forward(*args, **kwargs)
        with graph.within(scope):
            return module.forward(*args, **kwargs)

    model.eval()
    token = call_observer.set(observe)
    try:
        for key, value in held.items():
            (model.set_parameter if key in params else model.set_buffer)(key, value)
        with tracing(graph):
            result = model(*inputs)
    finally:
        call_observer.reset(token)
        for key, value in params.items():
            model.set_parameter(key, value)
        for key, value in buffers.items():
            model.set_buffer(key, value)
        for module, training in modes:
            object.__setattr__(module, "training", training)
    used = {name for node in graph.nodes for name in node.input}
    for key, value in held.items():
        if key in used:
            graph.initializer(key, _host(value._value))
    results = list(result) if isinstance(result, tuple | list) else [result]
    for i, value in enumerate(results):
        if type(value) is not ExportArray:
            what = type(value).__name__
            raise OnnxExportError(
                f"the model's output {i} is a {what} that does not depend on its input; "
                "export models whose outputs are computed from their inputs"
            )
    return results


def _host(value: Any) -> Any:
    from ... import backends

    return backends.to_numpy(value)


def _value_info(onnx: Any, name: str, array: ExportArray, dynamic: bool) -> Any:
    dims: list[Any] = [int(n) for n in array._value.shape]
    if dynamic:
        if array.batch_axis is not None:
            dims[array.batch_axis] = "batch"
        else:  # how the batch reaches these sizes is not known: leave them open
            dims = [f"{name}_dim_{i}" for i in range(len(dims))]
    return onnx.helper.make_tensor_value_info(name, onnx_type(onnx, array.dtype), dims)


def _model_proto(
    onnx: Any,
    graph: Graph,
    inputs: list[ExportArray],
    outputs: list[ExportArray],
    out_names: list[str],
    dynamic: bool,
    opset: int,
) -> Any:
    """The ModelProto: outputs renamed in place where a node made them, else an Identity."""
    produced = {name: node for node in graph.nodes for name in node.output}
    renames: dict[str, str] = {}
    for array, name in zip(outputs, out_names, strict=True):
        if array.name in produced and array.name not in renames:
            renames[array.name] = name
        else:
            source = renames.get(array.name, array.name)
            graph.nodes.append(onnx.helper.make_node("Identity", [source], [name]))
    for node in graph.nodes:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
        for i, name in enumerate(node.output):
            if name in renames:
                node.output[i] = renames[name]
    input_infos = [_value_info(onnx, x.name, x, dynamic) for x in inputs]
    output_infos = [
        _value_info(onnx, name, array, dynamic)
        for array, name in zip(outputs, out_names, strict=True)
    ]
    onnx_graph = onnx.helper.make_graph(
        graph.nodes, "xpnet", input_infos, output_infos, list(graph.initializers.values())
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(
        onnx_graph,
        opset_imports=opsets,
        producer_name="xpnet",
        producer_version=__version__,
        ir_version=onnx.helper.find_min_ir_version_for(opsets),
    )
    return proto
