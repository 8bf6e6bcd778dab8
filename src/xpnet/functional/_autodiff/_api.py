"""Gradients of functions of arrays: :func:`grad`, :func:`value_and_grad` and
:func:`stop_gradient`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import array_api_compat

from ._sweep import backward
from ._tape import TrackedArray, constant, leaf, new_trace

__all__ = ["grad", "stop_gradient", "traced_vjp", "value_and_grad"]


def _is_array(value: Any) -> bool:
    return (
        value is not None
        and not isinstance(value, int | float | complex | bool)
        and (array_api_compat.is_array_api_obj(value))
    )


def map_arrays(fn: Callable[[Any], Any], tree: Any) -> Any:
    """``tree`` (an array, or dicts, lists and tuples of them) with ``fn`` applied to each
    array; anything else is kept."""
    if isinstance(tree, dict):
        return type(tree)((key, map_arrays(fn, value)) for key, value in tree.items())
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a named tuple
        return type(tree)(*(map_arrays(fn, value) for value in tree))
    if isinstance(tree, list | tuple):
        return type(tree)(map_arrays(fn, value) for value in tree)
    if _is_array(tree):
        return fn(tree)
    return tree


def stop_gradient(x: Any) -> Any:
    """``x`` with no gradient flowing through it (torch's ``detach``, JAX's
    ``stop_gradient``).

    Parameters
    ----------
    x : array, or dict / list / tuple of arrays
        Inside a differentiated function, the arrays are kept as values that count as
        constants; outside one, ``x`` is returned as it is.

    Returns
    -------
    array or the same structure
        The same values.

    Examples
    --------
    >>> import array_api_compat, xpnet
    >>> def f(x):
    ...     xp = array_api_compat.array_namespace(x)
    ...     return xp.sum(x * xpnet.stop_gradient(x))    # d/dx is x, not 2x
    >>> xpnet.to_numpy(xpnet.grad(f)(xpnet.asarray([1.0, 3.0]))).tolist()
    [1.0, 3.0]
    """
    return map_arrays(lambda a: constant(a) if type(a) is TrackedArray else a, x)


def primal_tree(tree: Any) -> Any:
    """``tree`` with every tracked array replaced by its backend value."""
    return map_arrays(lambda a: a._value if type(a) is TrackedArray else a, tree)


def _argnums(argnums: int | Sequence[int], count: int) -> tuple[int, ...]:
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not positions:
        raise ValueError("argnums: expected at least one argument position")
    for position in positions:
        if isinstance(position, bool) or not isinstance(position, int):
            raise TypeError(f"argnums: expected ints, got {position!r}")
        if not -count <= position < count:
            raise ValueError(
                f"argnums: position {position} is outside the {count} positional argument(s)"
            )
    return tuple(p % count for p in positions)


def _scalar_output(result: Any, name: str) -> TrackedArray:
    value: TrackedArray
    if type(result) is TrackedArray:
        value = result
    else:
        if not _is_array(result):
            raise TypeError(
                f"{name}: the function must return a 0-d floating-point array, got "
                f"{type(result).__name__}"
            )
        value = constant(result)
    if tuple(value.shape) != ():
        raise ValueError(
            f"{name}: the function must return a scalar (0-d array) to be differentiated, got "
            f"shape {tuple(value.shape)}; reduce it (e.g. with xp.sum or xp.mean)"
        )
    if not value._xp.isdtype(value.dtype, "real floating"):
        raise TypeError(f"{name}: the function returned dtype {value.dtype}, not a real float")
    return value


def _differentiate(
    fn: Callable[..., Any],
    argnums: int | Sequence[int],
    has_aux: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    name: str,
) -> tuple[Any, Any, Any]:
    """``(value, aux, gradients)`` of ``fn(*args, **kwargs)``."""
    positions = _argnums(argnums, len(args))
    trace = new_trace()
    leaves: dict[int, Any] = {}

    def as_leaf(path: str) -> Callable[[Any], Any]:
        def wrap(value: Any) -> TrackedArray:
            return leaf(value, trace, path)

        return wrap

    traced = []
    for i, arg in enumerate(args):
        if i in positions:
            leaves[i] = map_arrays(as_leaf(f"argument {i}"), arg)
            traced.append(leaves[i])
        else:
            traced.append(map_arrays(constant, arg))
    result = fn(*traced, **{k: map_arrays(constant, v) for k, v in kwargs.items()})
    aux = None
    if has_aux:
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"{name}: with has_aux=True the function must return (value, aux)")
        result, aux = result
    output = _scalar_output(result, name)
    xp = output._xp
    found = backward([(output, xp.ones_like(output._value))], xp)

    def gradient_of(tracked: Any) -> Any:
        got = found.get(tracked._node)
        return xp.zeros_like(tracked._value) if got is None else got

    grads = tuple(map_arrays(gradient_of, leaves[i]) for i in positions)
    return output._value, primal_tree(aux), grads[0] if isinstance(argnums, int) else grads


def value_and_grad(
    fn: Callable[..., Any], argnums: int | Sequence[int] = 0, *, has_aux: bool = False
) -> Callable[..., Any]:
    """``fn`` made to return its value and its gradient (JAX's form).

    Parameters
    ----------
    fn : callable
        A function of arrays returning a 0-d floating-point array. It may use the ops of
        :mod:`xpnet.functional` (each one recorded step with its own pullback), any
        function of the Array API standard through the arrays' namespace
        (``xp = array_api_compat.array_namespace(x)``), the arrays' operators and
        indexing, and Python control flow.
    argnums : int or sequence of int, default 0
        The positional arguments to differentiate. Each may be an array or a dict, list
        or tuple of arrays (e.g. a model's parameters).
    has_aux : bool, default False
        ``fn`` returns ``(value, aux)``; ``aux`` comes back as computed, without gradient.

    Returns
    -------
    callable
        ``(value, grads)`` for the same arguments as ``fn`` (``((value, aux), grads)`` with
        ``has_aux``). ``grads`` has the structure of the argument (a tuple of them when
        ``argnums`` is a sequence); an argument the value does not depend on gets zeros.
        The value and gradients are arrays of the inputs' backend, on their device.

    Raises
    ------
    DifferentiationError
        (a ``TypeError``) Inside ``fn``: an in-place write into a recorded array, a
        function without a pullback given an array that carries a gradient, or an array
        from another differentiation.

    Examples
    --------
    >>> import array_api_compat, xpnet
    >>> def f(x, y):
    ...     xp = array_api_compat.array_namespace(x, y)
    ...     return xp.sum(xp.exp(x) * y)
    >>> x = xpnet.asarray([0.0, 1.0], dtype="float64")
    >>> y = xpnet.asarray([2.0, 3.0], dtype="float64")
    >>> value, (dx, dy) = xpnet.value_and_grad(f, argnums=(0, 1))(x, y)
    >>> round(float(value), 4), xpnet.to_numpy(dx).round(4).tolist()
    (10.1548, [2.0, 8.1548])
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        value, aux, grads = _differentiate(fn, argnums, has_aux, args, kwargs, "value_and_grad")
        return ((value, aux), grads) if has_aux else (value, grads)

    return run


def grad(
    fn: Callable[..., Any], argnums: int | Sequence[int] = 0, *, has_aux: bool = False
) -> Callable[..., Any]:
    """``fn`` made to return its gradient (see :func:`value_and_grad`).

    Returns
    -------
    callable
        The gradient for the same arguments as ``fn`` (``(grads, aux)`` with
        ``has_aux``).

    Examples
    --------
    >>> import array_api_compat, xpnet
    >>> def f(x):
    ...     return array_api_compat.array_namespace(x).sum(x**3)
    >>> xpnet.to_numpy(xpnet.grad(f)(xpnet.asarray([1.0, 2.0]))).tolist()
    [3.0, 12.0]
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        _, aux, grads = _differentiate(fn, argnums, has_aux, args, kwargs, "grad")
        return (grads, aux) if has_aux else grads

    return run


def traced_vjp(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    argnums: Sequence[int] | None,
) -> tuple[Any, Callable[[Any], tuple[Any, ...]]]:
    """:func:`vjp` of any function of arrays, by recording it (see :func:`vjp`)."""
    wanted = set(range(len(args))) if argnums is None else set(argnums)
    outside = sorted(i for i in wanted if not 0 <= i < len(args))
    if outside:
        raise ValueError(f"argnums: positions {outside} are outside the {len(args)} arguments")
    trace = new_trace()
    leaves: dict[int, Any] = {}
    traced = []

    def as_leaf(position: int) -> Callable[[Any], TrackedArray]:
        return lambda a: leaf(a, trace, f"argument {position}")

    for i, arg in enumerate(args):
        if i in wanted:
            leaves[i] = map_arrays(as_leaf(i), arg)
            traced.append(leaves[i])
        else:
            traced.append(map_arrays(constant, arg))
    output = fn(*traced, **{k: map_arrays(constant, v) for k, v in kwargs.items()})
    outputs = list(output) if isinstance(output, tuple | list) else [output]
    used = [False]

    def pullback(cotangent: Any) -> tuple[Any, ...]:
        if used[0]:
            raise RuntimeError("this pullback was already used: run vjp again")
        used[0] = True
        cotangents = list(cotangent) if isinstance(output, tuple | list) else [cotangent]
        if len(cotangents) != len(outputs):
            raise ValueError(
                f"cotangent: expected {len(outputs)} cotangents (one per output), got "
                f"{len(cotangents)}"
            )
        roots = []
        xp = None
        for out, cot in zip(outputs, cotangents, strict=True):
            if cot is None or type(out) is not TrackedArray:
                continue
            if tuple(cot.shape) != tuple(out.shape):
                raise ValueError(
                    f"cotangent: expected shape {tuple(out.shape)} (the output's), got "
                    f"{tuple(cot.shape)}"
                )
            roots.append((out, cot))
            xp = out._xp
        found = backward(roots, xp) if roots else {}

        def gradient_of(tracked: Any) -> Any:
            got = found.get(tracked._node)
            return tracked._xp.zeros_like(tracked._value) if got is None else got

        return tuple(
            map_arrays(gradient_of, leaves[i]) if i in leaves else None for i in range(len(args))
        )

    return primal_tree(output), pullback
