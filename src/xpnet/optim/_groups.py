"""What the optimizers build on: flat groups of parameters (:class:`ParamGroup`), the
parameters a user's group names, and the checks of their options."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import array_api_compat

from .. import backends
from .._numbers import real
from ..nn.module import Module

__all__ = [
    "ParamGroup",
    "flatten",
    "member_names",
    "non_negative",
    "on_host_then_like",
    "saved_option",
]


def non_negative(name: str, value: Any) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` unless it is a finite number
    >= 0 (NumPy's scalars and 0-d arrays are numbers too, as for torch)."""
    number = real(value)
    if number is None:
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not 0 <= number < math.inf:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return number


def on_host_then_like(value: Any, param: Any) -> Any:
    """``value`` as an array of ``param``'s namespace, device and dtype."""
    xp = array_api_compat.array_namespace(param)
    host = backends.to_numpy(value)
    if not host.flags.writeable:  # e.g. from JAX; torch warns when wrapping those
        host = host.copy()
    return xp.asarray(host, dtype=param.dtype, device=array_api_compat.device(param))


def saved_option(value: Any, current: Any, key: str) -> Any:
    """An option read back from a state dict, of the kind the option is (a flag stays a
    flag, a number a number): a string "false" must not become True."""
    if not isinstance(value, bool | int | float):
        host = backends.to_numpy(value)
        value = host.item() if host.ndim == 0 else value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"optimizer state {key!r}: expected True or False, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"optimizer state {key!r}: expected a number, got {value!r}")
    return type(current)(value)


def flatten(xp: Any, arrays: list[Any]) -> Any:
    """One 1-D buffer holding ``arrays`` one after another."""
    flat = [xp.reshape(a, (-1,)) for a in arrays]
    return flat[0] if len(flat) == 1 else xp.concat(flat)


@dataclass
class ParamGroup:
    """Parameters updated together: their names, shapes and places in the flat buffers.

    Attributes
    ----------
    names : tuple of str
        The parameters, in the model's order.
    shapes : tuple of tuple of int
        Their shapes.
    bounds : tuple of int
        ``bounds[i]:bounds[i + 1]`` is parameter ``i``'s range in the flat buffers.
    step : int
        Updates each of these parameters has had.
    state : dict of str to array
        The optimizer's flat state buffers (e.g. ``exp_avg``), by slot name.
    flat : array or None
        The flat parameter buffer whose views the model holds (``None`` when unknown).
    views : tuple
        The arrays the group last set on the model (to recognise them next step).
    index : int
        The parameter group (:attr:`Optimizer.param_groups`) whose options apply.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    bounds: tuple[int, ...]
    step: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    flat: Any = None
    views: tuple[Any, ...] = ()
    index: int = 0

    @classmethod
    def of(
        cls, names: list[str], params: Mapping[str, Any], step: int, index: int = 0
    ) -> ParamGroup:
        """A group of ``names`` (shapes taken from ``params``) with no state yet."""
        shapes = tuple(tuple(int(n) for n in params[name].shape) for name in names)
        bounds = [0]
        for shape in shapes:
            bounds.append(bounds[-1] + math.prod(shape))
        return cls(tuple(names), shapes, tuple(bounds), step, index=index)

    def split(self, xp: Any, flat: Any) -> list[Any]:
        """``flat`` cut back into one array per parameter (views where the library has
        them)."""
        if len(self.names) == 1:
            return [xp.reshape(flat, self.shapes[0])]
        return [
            xp.reshape(flat[self.bounds[i] : self.bounds[i + 1]], shape)
            for i, shape in enumerate(self.shapes)
        ]

    def flat_params(self, params: Mapping[str, Any]) -> Any:
        """The flat parameter buffer: the one the model's parameters view, when they are
        still the arrays this group set, else a new one."""
        current = [params[name] for name in self.names]
        if self.flat is not None and all(a is b for a, b in zip(current, self.views, strict=True)):
            return self.flat
        xp = array_api_compat.array_namespace(current[0])
        return flatten(xp, current)


def member_names(model: Module, spec: Any, where: str) -> list[str]:
    """The qualified names of the parameters ``spec`` stands for: a sub-module of
    ``model`` (or ``model``), a name, an array of the model, a ``(name, array)`` pair, or
    an iterable of these (``model.backbone.parameters()``, a filtered
    ``named_parameters()``)."""
    named = list(model.named_parameters())
    if isinstance(spec, Module):
        for path, module in model.named_modules():
            if module is spec:
                return [n for n, _ in module.named_parameters(prefix=path)]
        raise ValueError(f"{where}: the module given is not part of the optimizer's model")
    items = [spec] if isinstance(spec, str) or array_api_compat.is_array_api_obj(spec) else spec
    if isinstance(items, Mapping):
        items = list(items.items())
    names: list[str] = []
    by_name = dict(named)
    for item in items:
        if isinstance(item, Module):
            names.extend(member_names(model, item, where))
        elif isinstance(item, str):
            if item not in by_name:
                raise ValueError(f"{where}: {item!r} is not a trainable parameter of the model")
            names.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            names.extend(member_names(model, item[0], where))
        else:
            found = [n for n, value in named if value is item]
            if not found:
                raise ValueError(
                    f"{where}: an array of shape {tuple(getattr(item, 'shape', ()))} is not a "
                    "parameter of the model (arrays are matched by identity: take them from "
                    "model.parameters() just before building the optimizer)"
                )
            names.append(found[0])
    return names
