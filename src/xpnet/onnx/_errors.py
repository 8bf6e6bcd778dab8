"""The importer's and exporter's errors."""

from __future__ import annotations

__all__ = ["OnnxExportError", "OnnxImportError", "UnsupportedOnnxError"]


class OnnxImportError(ValueError):
    """An ONNX model xpnet cannot read: a damaged or hostile file, a graph that breaks the
    ONNX rules, or a value that does not fit the operator it goes into. The message names
    the file, node, tensor or attribute."""


class UnsupportedOnnxError(OnnxImportError, NotImplementedError):
    """A valid ONNX model that uses something xpnet does not implement (an operator, an
    attribute value, a data type): the message names the node, its operator and the
    opset."""


class OnnxExportError(ValueError):
    """A model :func:`xpnet.onnx.export` cannot write as ONNX: it computes something with
    no ONNX form as traced (an op, a Python decision on an array's value, an in-place
    write). The message names it and what to do instead."""
