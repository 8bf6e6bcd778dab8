"""Reading an ONNX model as untrusted input: parsed, checked and turned into plain Python.

Everything the importer needs from a ``ModelProto`` is read here, once, and checked before
any array is allocated: the opset, the graph's inputs and outputs, each node's operator and
attributes (as Python values), and the initializers (as NumPy arrays). A file that is not a
model, a graph that uses a name before defining it, a tensor whose declared size does not
match its data, or an external-data path that leaves the model's folder is an
:class:`OnnxImportError` that names the file, node or tensor, never a traceback from deep
inside the protobuf or NumPy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import OnnxImportError, UnsupportedOnnxError

__all__ = [
    "MAX_ELEMENTS",
    "MAX_OPSET",
    "MIN_OPSET",
    "GraphSpec",
    "NodeSpec",
    "numpy_dtype",
    "read_model",
]

#: The opsets of the default domain the importer reads (the ONNX 1.23 release has 28; 6 is
#: the last before numpy-style broadcasting, which PyTorch's early exports use).
MIN_OPSET, MAX_OPSET = 6, 28
#: The largest tensor the importer allocates, in elements (a bound on a product of dims,
#: checked before the data is read: 2**33 float32 values are 32 GiB).
MAX_ELEMENTS = 1 << 33
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class NodeSpec:
    """One node: its position, names, operator and attributes (Python values)."""

    index: int
    name: str
    op_type: str
    inputs: tuple[str, ...]  # "" marks an optional input left out
    outputs: tuple[str, ...]
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How errors name this node: ``node 3 'conv1' (Conv)``."""
        name = f" {self.name!r}" if self.name else ""
        return f"node {self.index}{name} ({self.op_type})"


@dataclass(frozen=True)
class GraphSpec:
    """A checked ONNX graph, ready to run."""

    source: str  # the file, or "<ModelProto>"
    opset: int
    nodes: tuple[NodeSpec, ...]
    initializers: dict[str, np.ndarray]
    inputs: tuple[str, ...]  # the graph inputs that are not initializers, in order
    outputs: tuple[str, ...]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - the onnx extra is missing
        raise ImportError("xpnet.onnx needs the onnx package: pip install 'xpnet[onnx]'") from exc
    return onnx


def read_model(model: Any) -> GraphSpec:
    """Parse and check ``model``: a path to an ``.onnx`` file, its bytes, or a
    ``ModelProto``."""
    onnx = _onnx()
    base_dir: Path | None = None
    if isinstance(model, onnx.ModelProto):
        source, proto = "<ModelProto>", model
    elif isinstance(model, (bytes, bytearray)):
        source, proto = "<bytes>", _parse(onnx, bytes(model), "<bytes>")
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model)
        source = str(path)
        if not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            if not path.exists():
                raise FileNotFoundError(f"{source}: no such ONNX model file")
            raise OnnxImportError(f"{source}: expected an ONNX model file, got {kind}")
        base_dir = path.resolve().parent
        proto = _parse(onnx, path.read_bytes(), source)
    else:
        raise TypeError(
            f"model: expected a path, bytes or an onnx.ModelProto, got {type(model).__name__}"
        )
    try:
        return _read_graph(onnx, proto, source, base_dir)
    except UnicodeDecodeError:  # protobuf keeps a string field's bytes until it is read
        raise OnnxImportError(
            f"{source}: not a valid ONNX model (a name or string is not UTF-8 text)"
        ) from None


def _read_graph(onnx: Any, proto: Any, source: str, base_dir: Path | None) -> GraphSpec:
    """The checked graph of a parsed model (see :func:`read_model`)."""
    opset = _opset(proto, source)
    graph = proto.graph
    # The tensors first, by xpnet's own checks (external data read in, only from the
    # model's folder), then the whole model by onnx's checker.
    initializers = {
        tensor.name: _tensor(onnx, tensor, f"{source}: initializer {tensor.name!r}", base_dir)
        for tensor in graph.initializer
    }
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        raise OnnxImportError(f"{source}: not a valid ONNX model ({first})") from None
    if graph.sparse_initializer:
        raise OnnxImportError(f"{source}: sparse initializers are not supported")
    nodes = tuple(
        _node(onnx, index, node, source, base_dir) for index, node in enumerate(graph.node)
    )
    inputs = tuple(value.name for value in graph.input if value.name not in initializers)
    for value in (*graph.input, *graph.output):
        kind = value.type.WhichOneof("value")
        if kind not in (None, "tensor_type"):
            raise UnsupportedOnnxError(
                f"{source}, opset {opset}: graph input or output {value.name!r} is a "
                f"{kind.replace('_type', '')}; xpnet runs graphs of tensors"
            )
    outputs = tuple(value.name for value in graph.output)
    _check_order(source, nodes, set(initializers) | set(inputs), outputs)
    return GraphSpec(
        source=source,
        opset=opset,
        nodes=nodes,
        initializers=initializers,
        inputs=inputs,
        outputs=outputs,
    )


def _parse(onnx: Any, data: bytes, source: str) -> Any:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError, or a RecursionError on deep nesting
        raise OnnxImportError(
            f"{source}: not an ONNX model (the protobuf does not parse: {type(exc).__name__})"
        ) from None
    if not proto.HasField("graph"):
        raise OnnxImportError(f"{source}: not an ONNX model (it has no graph)")
    return proto


def _opset(proto: Any, source: str) -> int:
    versions = {entry.domain: int(entry.version) for entry in proto.opset_import}
    domains = [d for d in versions if d not in _DEFAULT_DOMAINS]
    if domains:
        raise OnnxImportError(
            f"{source}: operator domain(s) {', '.join(map(repr, sorted(domains)))} are not "
            "supported; xpnet reads the default ONNX domain only"
        )
    opset = next((versions[d] for d in _DEFAULT_DOMAINS if d in versions), None)
    if opset is None:
        raise OnnxImportError(f"{source}: the model imports no opset of the default domain")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxImportError(
            f"{source}: opset {opset} is not supported; xpnet reads opsets "
            f"{MIN_OPSET} to {MAX_OPSET} (onnx.version_converter can convert a model)"
        )
    return opset


def _tensor(onnx: Any, tensor: Any, what: str, base_dir: Path | None) -> np.ndarray:
    """A ``TensorProto`` as a NumPy array, its size and data checked first."""
    dims = [int(d) for d in tensor.dims]
    if any(d < 0 for d in dims):
        raise OnnxImportError(f"{what}: negative dimension in shape {tuple(dims)}")
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise OnnxImportError(
            f"{what}: shape {tuple(dims)} has {count} elements, more than the "
            f"{MAX_ELEMENTS} xpnet reads"
        )
    dtype = numpy_dtype(tensor.data_type)
    if isinstance(dtype, str):
        raise OnnxImportError(
            f"{what}: unsupported data type {dtype}; xpnet reads float32, float64, "
            "integers and bool"
        )
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        _load_external(onnx, tensor, what, base_dir, count * dtype.itemsize)
    elif tensor.HasField("raw_data") and len(tensor.raw_data) != count * dtype.itemsize:
        raise OnnxImportError(
            f"{what}: {len(tensor.raw_data)} bytes of data for shape {tuple(dims)} of "
            f"{dtype} ({count * dtype.itemsize} bytes expected)"
        )
    try:
        array = onnx.numpy_helper.to_array(tensor)
    except Exception as exc:
        raise OnnxImportError(f"{what}: unreadable data ({exc})") from None
    if array.size != count:
        raise OnnxImportError(
            f"{what}: {array.size} values for shape {tuple(dims)} ({count} expected)"
        )
    return np.array(array.reshape(dims), order="C")  # a 0-d tensor stays 0-d


def numpy_dtype(code: int) -> np.dtype[Any] | str:
    """The NumPy dtype of ONNX data type ``code`` where xpnet computes with it (float32,
    float64, integers, bool), else the type's name, for the error."""
    onnx = _onnx()
    try:
        dtype: np.dtype[Any] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(code))
    except Exception:  # a code onnx has no NumPy type for (bfloat16, float8, ...)
        names = onnx.TensorProto.DataType
        return str(names.Name(code)) if code in names.values() else f"code {code}"
    if dtype.kind not in "biuf" or dtype.itemsize > 8 or dtype == np.float16:
        return str(dtype)
    return dtype


def _load_external(onnx: Any, tensor: Any, what: str, base_dir: Path | None, expected: int) -> None:
    """Read a tensor's external data into it, only from a regular file inside the model's
    folder, and only the bytes its shape asks for."""
    if base_dir is None:
        raise OnnxImportError(
            f"{what}: its data is in an external file; load the model from its path so that "
            "the file can be found beside it"
        )
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    relative = Path(location)
    if not location or relative.is_absolute() or ".." in relative.parts:
        raise OnnxImportError(
            f"{what}: external data location {location!r} must be a relative path inside "
            "the model's folder"
        )
    path = (base_dir / relative).resolve()
    if base_dir not in path.parents:
        raise OnnxImportError(
            f"{what}: external data location {location!r} leaves the model's folder"
        )
    if not path.is_file():
        raise OnnxImportError(f"{what}: external data file {str(path)!r} is not a regular file")
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else expected
    except ValueError:
        raise OnnxImportError(f"{what}: external data offset or length is not a number") from None
    size = path.stat().st_size
    if offset < 0 or length != expected or offset + length > size:
        raise OnnxImportError(
            f"{what}: external data of {length} bytes at offset {offset} in {str(path)!r} "
            f"({size} bytes) does not hold the {expected} bytes its shape needs"
        )
    with path.open("rb") as file:
        file.seek(offset)
        tensor.raw_data = file.read(length)
    tensor.data_location = onnx.TensorProto.DEFAULT
    del tensor.external_data[:]


def _node(onnx: Any, index: int, node: Any, source: str, base_dir: Path | None) -> NodeSpec:
    spec = NodeSpec(
        index=index,
        name=node.name,
        op_type=node.op_type,
        inputs=tuple(node.input),
        outputs=tuple(node.output),
    )
    if node.domain not in _DEFAULT_DOMAINS:
        raise OnnxImportError(
            f"{source}: {spec.label}: operator domain {node.domain!r} is not supported"
        )
    attributes = spec.attributes  # filled in place: the spec is made once
    for attribute in node.attribute:
        what = f"{source}: {spec.label}: attribute {attribute.name!r}"
        kind = attribute.type
        kinds = onnx.AttributeProto
        if kind in (kinds.GRAPH, kinds.GRAPHS):
            raise OnnxImportError(f"{what}: subgraphs (If, Loop, Scan) are not supported")
        if kind == kinds.TENSOR:
            attributes[attribute.name] = _tensor(onnx, attribute.t, what, base_dir)
        elif kind in (
            kinds.FLOAT,
            kinds.INT,
            kinds.STRING,
            kinds.FLOATS,
            kinds.INTS,
            kinds.STRINGS,
        ):
            value = onnx.helper.get_attribute_value(attribute)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif isinstance(value, list):
                value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
            attributes[attribute.name] = value
        else:
            raise OnnxImportError(f"{what}: attribute type {kind} is not supported")
    return spec


def _check_order(
    source: str, nodes: tuple[NodeSpec, ...], defined: set[str], outputs: tuple[str, ...]
) -> None:
    """Every name used after it is defined (ONNX graphs are topologically sorted), and
    defined once."""
    known = set(defined)
    for node in nodes:
        for name in node.inputs:
            if name and name not in known:
                raise OnnxImportError(
                    f"{source}: {node.label} reads {name!r}, which no graph input, "
                    "initializer or earlier node defines"
                )
        for name in node.outputs:
            if name and name in known:
                raise OnnxImportError(f"{source}: {node.label} defines {name!r} a second time")
            known.add(name)
    for name in outputs:
        if name not in known:
            raise OnnxImportError(f"{source}: graph output {name!r} is never computed")
