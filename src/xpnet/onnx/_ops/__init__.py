"""The ONNX operators xpnet runs, each written once with :mod:`xpnet.functional` and the
array namespace's own functions (see :mod:`._registry`)."""

from . import _nn, _resize, _tensor
from ._registry import OPERATORS, Call, Host, OperatorDef, operator

del _nn, _resize, _tensor

__all__ = ["OPERATORS", "Call", "Host", "OperatorDef", "operator"]
