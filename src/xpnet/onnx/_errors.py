"""The importer's errors."""

from __future__ import annotations

__all__ = ["OnnxImportError", "UnsupportedOnnxError"]


class OnnxImportError(ValueError):
    """An ONNX model xpnet cannot read: a damaged or hostile file, a graph that breaks the
    ONNX rules, or a value that does not fit the operator it goes into. The message names
    the file, node, tensor or attribute."""


class UnsupportedOnnxError(OnnxImportError, NotImplementedError):
    """A valid ONNX model that uses something xpnet does not implement (an operator, an
    attribute value, a data type): the message names the node, its operator and the
    opset."""
