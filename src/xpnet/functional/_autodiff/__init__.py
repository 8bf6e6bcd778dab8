"""Reverse-mode differentiation of Array API code over hand-written pullbacks.

* :mod:`._rules`: the ops of :mod:`xpnet.functional` and their rules (:func:`primitive`,
  :func:`defvjp`, :func:`vjp`): each op is one recorded step with its own pullback;
* :mod:`._tape`: tracked arrays and the nodes that record how they were made;
  :mod:`._sweep`: the reverse sweep through them;
* :mod:`._namespace`: the namespace a tracked array gives to code written against the
  standard, whose functions record their pullbacks, written once against the standard in
  :mod:`._elementwise`, :mod:`._statistics`, :mod:`._manipulation`, :mod:`._linalg` and
  :mod:`._operators` (indexing, augmented assignment, NumPy ufuncs);
* :mod:`._api`: :func:`grad`, :func:`value_and_grad` and :func:`stop_gradient`.
"""

from . import _elementwise, _linalg, _manipulation, _operators, _statistics  # register rules
from ._api import grad, map_arrays, primal_tree, stop_gradient, value_and_grad
from ._namespace import LINALG, NO_GRADIENT, STANDARD, RecordingNamespace, recording_namespace
from ._rules import Pullback, defvjp, differentiable_ops, primitive, vjp
from ._sweep import backward, observe_pullbacks
from ._tape import (
    DifferentiationError,
    Node,
    TrackedArray,
    constant,
    is_tracked,
    leaf,
    new_trace,
    primal,
)

del _elementwise, _linalg, _manipulation, _operators, _statistics

__all__ = [
    "LINALG",
    "NO_GRADIENT",
    "STANDARD",
    "DifferentiationError",
    "Node",
    "Pullback",
    "RecordingNamespace",
    "TrackedArray",
    "backward",
    "constant",
    "defvjp",
    "differentiable_ops",
    "grad",
    "is_tracked",
    "leaf",
    "map_arrays",
    "new_trace",
    "observe_pullbacks",
    "primal",
    "primal_tree",
    "primitive",
    "recording_namespace",
    "stop_gradient",
    "value_and_grad",
    "vjp",
]
