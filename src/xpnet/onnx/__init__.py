"""ONNX models in xpnet: import a graph as a :class:`~xpnet.nn.Module` that runs, and
trains, on any backend; export an xpnet model as a graph.

>>> import xpnet.onnx                                         # doctest: +SKIP
>>> model = xpnet.onnx.load("resnet.onnx")                     # doctest: +SKIP
>>> logits = model(images)                                     # doctest: +SKIP

Every node runs through :mod:`xpnet.functional` and the array namespace's own functions,
so an imported model runs on NumPy, CuPy, torch, JAX or array-api-strict unchanged, and its
gradients come from recording it like any other model. A model file is untrusted input: it
is checked whole before anything is allocated, and anything xpnet cannot run is an error
that names the node, its operator and the opset, never a partial model.

:func:`export` traces a model's own ``forward`` and writes each layer as its ONNX operator
(``Conv``, ``BatchNormalization``, ``Gemm``, ...), its parameters as initializers named by
their ``state_dict`` keys.

Needs the ``onnx`` extra (``pip install 'xpnet[onnx]'``).
"""

from __future__ import annotations

from typing import Any

from ._errors import OnnxExportError, OnnxImportError, UnsupportedOnnxError
from ._export import DEFAULT_EXPORT_OPSET, EXPORT_OPSETS, export
from ._model import OnnxModel
from ._ops import OPERATORS
from ._reader import MAX_OPSET, MIN_OPSET, GraphSpec, NodeSpec, read_model

__all__ = [
    "DEFAULT_EXPORT_OPSET",
    "EXPORT_OPSETS",
    "MAX_OPSET",
    "MIN_OPSET",
    "GraphSpec",
    "NodeSpec",
    "OnnxExportError",
    "OnnxImportError",
    "OnnxModel",
    "UnsupportedOnnxError",
    "export",
    "load",
    "supported_operators",
]


def load(model: Any) -> OnnxModel:
    """Import an ONNX model.

    Parameters
    ----------
    model : str, os.PathLike, bytes or onnx.ModelProto
        An ``.onnx`` file (external data is read only from its own folder), its bytes, or
        a parsed model.

    Returns
    -------
    OnnxModel
        A module in evaluation mode whose parameters are the graph's float initializers,
        created on the active backend.

    Raises
    ------
    OnnxImportError
        The file is not a valid ONNX model, or a tensor, attribute or external-data path in
        it is not acceptable.
    UnsupportedOnnxError
        The model uses an operator, opset, attribute value or data type xpnet does not
        implement (the message names the nodes).
    """
    return OnnxModel(read_model(model))


def supported_operators() -> list[str]:
    """The ONNX operators (default domain) :func:`load` accepts."""
    return sorted(OPERATORS)
