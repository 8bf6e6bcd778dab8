"""Ops with hand-written pullbacks: :func:`primitive`, :func:`defvjp` and :func:`vjp`.

Each op ``f`` of :mod:`xpnet.functional` has a *rule* that computes the forward result
together with a *pullback*: a function from the cotangent of the output to the cotangents
of the inputs. Marked with :func:`primitive`, ``f`` is one recorded step wherever it is
called on tracked arrays: its rule runs, not a recording of the array functions inside it
(conv2d's backward is conv2d's rule, not a trace of its im2col). Called on plain arrays it
is the plain function, at no extra cost but one type check per argument.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import array_api_compat

from ._api import traced_vjp
from ._tape import DifferentiationError, Node, TrackedArray, constant, record

__all__ = ["Pullback", "defvjp", "differentiable_ops", "primitive", "vjp"]

Pullback = Callable[[Any], tuple[Any, ...]]
Rule = Callable[..., tuple[Any, Pullback]]
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _RuleEntry:
    rule: Rule
    parameters: tuple[str, ...]  # the forward's parameter names, in order
    wrt: tuple[str, ...]  # parameters the rule's pullback returns gradients for, in order
    selective: bool  # the rule takes ``needs=`` and skips the gradients nobody asked for


_RULES: dict[Callable[..., Any], _RuleEntry] = {}

Handler = Callable[[Callable[..., Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


#: Array types a primitive hands its whole call to, instead of running ``fn``: tracked
#: arrays record one step; ONNX export's symbolic arrays (``xpnet.onnx``) write one node.
#: ``handler(op, fn, args, kwargs)``, looked up by exact type.
#: (Tracked arrays are entered below ``_call_recorded``.)
HANDLERS: dict[type, Handler] = {}


def _is_primitive(fn: Any) -> bool:
    return bool(getattr(fn, "__xpnet_primitive__", False))


def primitive(fn: _F) -> _F:
    """Mark ``fn`` as an op with a pullback of its own (register it with :func:`defvjp`).

    Inside a differentiated function (:func:`xpnet.grad`, :func:`xpnet.value_and_grad`),
    a call of the returned function on tracked arrays is one recorded step whose backward
    is the rule's pullback. On plain arrays it is ``fn`` itself.

    Parameters
    ----------
    fn : callable
        The forward, written on plain arrays of any Array API namespace.

    Returns
    -------
    callable
        ``fn`` wrapped; keep it under ``fn``'s name so that callers use the wrapper.

    Examples
    --------
    >>> import array_api_compat, xpnet, xpnet.functional as F
    >>> @F.primitive
    ... def cube(x):
    ...     return x * x * x
    >>> @F.defvjp(cube, "x")
    ... def _cube_rule(x):
    ...     return x * x * x, lambda dy: (3 * x * x * dy,)
    >>> grad = xpnet.grad(lambda x: array_api_compat.array_namespace(x).sum(cube(x)))
    >>> xpnet.to_numpy(grad(xpnet.asarray([1.0, 2.0]))).tolist()
    [3.0, 12.0]
    """
    if _is_primitive(fn):
        return fn

    handlers = HANDLERS

    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        for value in args:
            if type(value) in handlers:
                return handlers[type(value)](op, fn, args, kwargs)
        for value in kwargs.values():
            if type(value) in handlers:
                return handlers[type(value)](op, fn, args, kwargs)
        return fn(*args, **kwargs)

    op.__xpnet_primitive__ = True  # type: ignore[attr-defined]
    return op  # type: ignore[return-value]


def defvjp(
    forward: Callable[..., Any], *wrt: str, selective: bool = False
) -> Callable[[Rule], Rule]:
    """Register the decorated function as the VJP rule of ``forward``.

    Parameters
    ----------
    forward : callable
        The op, marked with :func:`primitive` (e.g. :func:`conv2d`).
    *wrt : str
        Names of the parameters the rule's pullback differentiates, in the order of the
        tuple it returns. They must be parameters of ``forward``.
    selective : bool, default False
        The rule accepts a keyword ``needs`` (a frozenset of names from ``wrt``) and may
        skip the work for, and return ``None`` as, the gradients not in it.

    Raises
    ------
    TypeError
        If ``forward`` is not marked with :func:`primitive`: a call inside a differentiated
        function would then be recorded function by function and never use this rule.
    ValueError
        If a name in ``wrt`` is not a parameter of ``forward``.

    Notes
    -----
    The rule takes the same arguments as ``forward`` and returns ``(output, pullback)``.
    ``pullback(cotangent)`` returns one gradient per name in ``wrt`` (``None`` where the
    argument was ``None``). For an op that returns a tuple, the first element is the one
    differentiated; the others carry no gradient.
    """
    name = getattr(forward, "__name__", repr(forward))
    if not _is_primitive(forward):
        raise TypeError(
            f"forward: {name} is not marked as a primitive; decorate it with "
            "@xpnet.functional.primitive so that its calls inside a differentiated function "
            "run this rule as one step"
        )
    parameters = tuple(inspect.signature(forward).parameters)
    unknown = [n for n in wrt if n not in parameters]
    if unknown:
        raise ValueError(f"{name} has no parameters {unknown}")

    def register(rule: Rule) -> Rule:
        _RULES[forward] = _RuleEntry(rule, parameters, tuple(wrt), selective)
        return rule

    return register


def differentiable_ops() -> list[str]:
    """Return the names of the ops :func:`vjp` can differentiate."""
    return sorted(fn.__name__ for fn in _RULES)


def _wrap_outputs(output: Any, xp: Any) -> Any:
    if isinstance(output, tuple):
        return tuple(_wrap_outputs(item, xp) for item in output)
    if output is not None and array_api_compat.is_array_api_obj(output):
        return constant(output, xp)
    return output


def _call_recorded(
    op: Callable[..., Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``op(*args, **kwargs)`` with tracked arguments: one recorded step."""
    entry = _RULES.get(op)
    xp = None
    parents: list[tuple[Node, int]] = []
    slots: list[int] = []

    def take(name: str | None, value: Any) -> Any:
        nonlocal xp
        if type(value) is not TrackedArray:
            return value
        if xp is None:
            xp = value._xp
        if value._node is not None:
            if entry is None:
                raise DifferentiationError(
                    f"{fn.__name__}: has no pullback; register one with "
                    "xpnet.functional.defvjp, or pass xpnet.stop_gradient(x) where no "
                    "gradient should flow"
                )
            if name not in entry.wrt:
                raise DifferentiationError(
                    f"{fn.__name__}: {name or 'an extra argument'} carries a gradient, but "
                    f"{fn.__name__} is not differentiable with respect to it (only "
                    f"{', '.join(entry.wrt)}); pass xpnet.stop_gradient({name}) if no "
                    "gradient should flow there"
                )
            parents.append((value._node, value._index))
            slots.append(entry.wrt.index(name))
        return value._value

    names = entry.parameters if entry is not None else ()
    raw_args = [take(names[i] if i < len(names) else None, a) for i, a in enumerate(args)]
    raw_kwargs = {key: take(key, value) for key, value in kwargs.items()}
    if not parents or entry is None:
        return _wrap_outputs(fn(*raw_args, **raw_kwargs), xp)
    if entry.selective:
        needs = frozenset(entry.wrt[slot] for slot in slots)
        output, rule_pullback = entry.rule(*raw_args, needs=needs, **raw_kwargs)
    else:
        output, rule_pullback = entry.rule(*raw_args, **raw_kwargs)
    chosen = tuple(slots)

    def pullback(cotangent: Any) -> tuple[Any, ...]:
        grads = rule_pullback(cotangent)
        return tuple(grads[slot] for slot in chosen)

    name = fn.__name__
    if isinstance(output, tuple):
        first = record(name, xp, output[0], tuple(parents), pullback)
        return (first, *(_wrap_outputs(item, xp) for item in output[1:]))
    return record(name, xp, output, tuple(parents), pullback)


HANDLERS[TrackedArray] = _call_recorded


def _is_array(value: Any) -> bool:
    return value is not None and array_api_compat.is_array_api_obj(value)


def _like(grad: Any, primal: Any) -> Any:
    """``grad`` in ``primal``'s floating dtype, as torch's autograd casts them: a float64
    cotangent of a float32 output gives float32 gradients, and so does a rule whose Python
    scalars promote 0-d arrays (NumPy 1.x's value-based casting)."""
    if grad is None or not _is_array(primal) or grad.dtype == primal.dtype:
        return grad
    xp = array_api_compat.array_namespace(primal)
    if not (xp.isdtype(grad.dtype, "real floating") and xp.isdtype(primal.dtype, "real floating")):
        return grad
    return xp.astype(grad, primal.dtype)


def vjp(
    fn: Callable[..., Any], *args: Any, argnums: Iterable[int] | None = None, **kwargs: Any
) -> tuple[Any, Pullback]:
    """Run an op and return its output together with its pullback.

    Parameters
    ----------
    fn : callable
        An op of :mod:`xpnet.functional`, e.g. ``F.conv2d``, or any function of arrays
        (a module, a block of your own), which is recorded as it runs.
    *args, **kwargs
        Its arguments. Pass the arrays you want gradients for positionally; for a
        function that is not an op they may be dicts, lists or tuples of arrays (e.g.
        ``dict(model.named_parameters())`` with :func:`xpnet.nn.functional_call`).
    argnums : iterable of int, optional
        The positions of the arguments whose gradients you need (default: all). The others
        come back as ``None``, and ops that can (e.g. ``conv2d``) skip computing them.

    Returns
    -------
    output : array or tuple
        What ``fn(*args, **kwargs)`` returns.
    pullback : callable
        ``pullback(cotangent)`` takes the cotangent of the output (same shape as the
        output; for ops that return a tuple, of its first element) and returns a tuple
        with one entry per positional argument: the gradient for array arguments, ``None``
        for ``None`` and non-array arguments (e.g. ``kernel_size``) and for arguments the
        op is not differentiable in (e.g. integer targets).

    Raises
    ------
    TypeError
        If ``fn`` has no pullback, or a differentiable array is passed by keyword (its
        gradient would have nowhere to go).

    Notes
    -----
    For an op, the pullback is its rule's and may be called more than once. For any
    other function it sweeps the recording once (a second call raises). For a scalar
    loss, :func:`xpnet.grad` and :func:`xpnet.value_and_grad` are simpler.

    Examples
    --------
    >>> import xpnet, xpnet.functional as F
    >>> x = xpnet.asarray([[[[1.0, -2.0], [3.0, -4.0]]]])
    >>> y, pullback = F.vjp(F.relu, x)
    >>> (dx,) = pullback(xpnet.asarray([[[[1.0, 1.0], [1.0, 1.0]]]]))
    >>> xpnet.to_numpy(dx).ravel().tolist()
    [1.0, 0.0, 1.0, 0.0]
    """
    entry = _RULES.get(fn)
    if entry is None:
        if not callable(fn):
            raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
        if _is_primitive(fn):
            raise TypeError(
                f"fn: {fn.__name__} is a primitive without a registered pullback "
                "(register one with defvjp)"
            )
        return traced_vjp(fn, args, kwargs, None if argnums is None else list(argnums))
    values = list(args) + list(kwargs.values())
    if any(type(v) is TrackedArray and v._node is not None for v in values):
        raise DifferentiationError(
            f"vjp({fn.__name__}, ...) was given an array recorded for differentiation: inside "
            f"a differentiated function, call {fn.__name__} directly and its pullback is "
            "recorded"
        )
    args = tuple(v._value if type(v) is TrackedArray else v for v in args)
    kwargs = {k: (v._value if type(v) is TrackedArray else v) for k, v in kwargs.items()}
    passed_by_keyword = [name for name in entry.wrt if _is_array(kwargs.get(name))]
    if passed_by_keyword:
        raise TypeError(
            f"pass {passed_by_keyword} positionally to {fn.__name__} when calling vjp: the "
            "pullback returns one gradient per positional argument"
        )
    if len(args) > len(entry.parameters):
        raise TypeError(
            f"{fn.__name__} takes at most {len(entry.parameters)} positional arguments, "
            f"got {len(args)}"
        )
    wanted = set(range(len(args))) if argnums is None else set(argnums)
    outside = sorted(i for i in wanted if not 0 <= i < len(args))
    if outside:
        raise ValueError(f"argnums: positions {outside} are outside the {len(args)} arguments")
    slots = [
        entry.wrt.index(name) if name in entry.wrt and _is_array(value) and i in wanted else None
        for i, (name, value) in enumerate(zip(entry.parameters, args, strict=False))
    ]
    if entry.selective:
        needs = frozenset(entry.wrt[slot] for slot in slots if slot is not None)
        output, rule_pullback = entry.rule(*args, needs=needs, **kwargs)
    else:
        output, rule_pullback = entry.rule(*args, **kwargs)
    primary = output[0] if isinstance(output, tuple) else output

    def pullback(cotangent: Any) -> tuple[Any, ...]:
        if _is_array(primary):
            if tuple(cotangent.shape) != tuple(primary.shape):
                raise ValueError(
                    f"cotangent: expected shape {tuple(primary.shape)} (the output's), "
                    f"got {tuple(cotangent.shape)}"
                )
            cotangent = _like(cotangent, primary)
        grads = rule_pullback(cotangent)
        return tuple(
            None if slot is None else _like(grads[slot], args[i]) for i, slot in enumerate(slots)
        )

    return output, pullback
