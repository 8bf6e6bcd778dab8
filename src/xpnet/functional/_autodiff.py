"""Vector-Jacobian products: every op's pullback, registered next to its forward.

There is no tape and no autograd library. Each op ``f`` has a *rule* that computes the
forward result together with a *pullback*: a function from the cotangent of the output
to the cotangents of the inputs. :func:`vjp` looks the rule up and maps its gradients
onto the positional arguments the caller passed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import array_api_compat

__all__ = ["Pullback", "defvjp", "differentiable_ops", "vjp"]

Pullback = Callable[[Any], tuple[Any, ...]]
Rule = Callable[..., tuple[Any, Pullback]]


@dataclass(frozen=True)
class _RuleEntry:
    rule: Rule
    parameters: tuple[str, ...]  # the forward's parameter names, in order
    wrt: tuple[str, ...]  # parameters the rule's pullback returns gradients for, in order
    selective: bool  # the rule takes ``needs=`` and skips the gradients nobody asked for


_RULES: dict[Callable[..., Any], _RuleEntry] = {}


def defvjp(
    forward: Callable[..., Any], *wrt: str, selective: bool = False
) -> Callable[[Rule], Rule]:
    """Register the decorated function as the VJP rule of ``forward``.

    Parameters
    ----------
    forward : callable
        The op, e.g. :func:`conv2d`.
    *wrt : str
        Names of the parameters the rule's pullback differentiates, in the order of the
        tuple it returns. They must be parameters of ``forward``.
    selective : bool, default False
        The rule accepts a keyword ``needs`` (a frozenset of names from ``wrt``) and may
        skip the work for, and return ``None`` as, the gradients not in it.

    Notes
    -----
    The rule takes the same arguments as ``forward`` and returns ``(output, pullback)``.
    ``pullback(cotangent)`` returns one gradient per name in ``wrt`` (``None`` where the
    argument was ``None``).
    """
    parameters = tuple(inspect.signature(forward).parameters)
    unknown = [name for name in wrt if name not in parameters]
    if unknown:
        raise ValueError(f"{forward.__name__} has no parameters {unknown}")

    def register(rule: Rule) -> Rule:
        _RULES[forward] = _RuleEntry(rule, parameters, tuple(wrt), selective)
        return rule

    return register


def differentiable_ops() -> list[str]:
    """Return the names of the ops :func:`vjp` can differentiate."""
    return sorted(fn.__name__ for fn in _RULES)


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
        An op of :mod:`xpnet.functional`, e.g. ``F.conv2d``.
    *args, **kwargs
        Its arguments. Pass the arrays you want gradients for positionally.
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
        name = getattr(fn, "__name__", repr(fn))
        raise TypeError(
            f"fn: {name} has no registered pullback; differentiable ops are "
            f"{', '.join(differentiable_ops())}"
        )
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
