"""How an op of :mod:`xpnet.functional` called on a traced array becomes ONNX nodes: the
table of export rules by op, the handler a primitive hands such a call to, and the small
helpers every rule uses. The rules themselves are in :mod:`._primitives` and
:mod:`._pooling`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ...functional._autodiff._rules import HANDLERS
from .._errors import OnnxExportError
from ._graph import ExportArray, Graph, active_graph
from ._indexing import raw

__all__ = ["Rule", "operand_name", "per_axis", "rule", "traced_input", "unary_rule", "wrapped"]


Rule = Callable[[Graph, dict[str, Any], Any], Any]
_RULES: dict[Callable[..., Any], tuple[Rule, inspect.Signature]] = {}


def rule(*ops: Callable[..., Any]) -> Callable[[Rule], Rule]:
    """Register the decorated function as the export rule of ``ops``."""

    def register(export: Rule) -> Rule:
        for op in ops:
            _RULES[op] = (export, inspect.signature(op))
        return export

    return register


def _handle(
    op: Callable[..., Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """A primitive called on a traced array: compute it on the backend, write its node."""
    entry = _RULES.get(op)
    name = getattr(fn, "__name__", repr(fn))
    if entry is None:
        raise OnnxExportError(
            f"{name} is not exported to ONNX (it is not part of a model's inference graph, "
            "or has no ONNX form); export the module that computes the predictions"
        )
    export, signature = entry
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    value = fn(**{key: raw(given) for key, given in arguments.items()})
    return export(active_graph(), arguments, value)


HANDLERS[ExportArray] = _handle


def operand_name(graph: Graph, value: Any, like: Any = None) -> str:
    """An operand's ONNX name, in ``like``'s dtype when given."""
    return graph.name_of(value, None if like is None else like.dtype)


def traced_input(arguments: dict[str, Any]) -> ExportArray:
    """The op's ``input``, which must be traced."""
    x = arguments["input"]
    if type(x) is not ExportArray:
        raise OnnxExportError(
            "an op's input is a constant while its weights depend on the model's input; "
            "exporting that is not supported"
        )
    return x


def per_axis(value: Any, rank: int) -> list[int]:
    """An int or a sequence of ints as ``rank`` ints (torch's ``stride=2``)."""
    if isinstance(value, int):
        return [int(value)] * rank
    values = [int(v) for v in value]
    return values * rank if len(values) == 1 else values


def wrapped(graph: Graph, value: Any, name: str, x: ExportArray) -> ExportArray:
    """The result of a layer that keeps its input's batch axis."""
    return graph.wrap(value, name, x.batch_axis, x.lost)


def unary_rule(op_type: str, **attributes: Any) -> Rule:
    """The rule of an op that is one ONNX operator on its input."""

    def export(graph: Graph, a: dict[str, Any], value: Any) -> Any:
        x = traced_input(a)
        return wrapped(graph, value, graph.one(op_type, [x.name], **attributes), x)

    return export
