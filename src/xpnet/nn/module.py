"""Modules: layers that hold parameters, run forward, and pull gradients back.

A :class:`Module` keeps its parameters and buffers as plain arrays of the backend in use.
Arrays need not be mutable (JAX's are not), so nothing is updated in place: optimizers and
batch-norm statistics *replace* arrays through :meth:`Module.set_parameter` and
:meth:`Module.set_buffer`.

Every module has ``forward(x)`` for inference and ``forward_vjp(x)``, which returns the
output and a pullback ``dy -> (dx, grads)`` where ``grads`` maps the module's own parameter
names (``"weight"``, ``"0.bias"``, ...) to their gradients.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar, overload

import array_api_compat

from .. import backends

__all__ = [
    "IncompatibleKeys",
    "Module",
    "ModulePullback",
    "Residual",
    "Sequential",
    "StateDictError",
]

ModulePullback = Callable[[Any], tuple[Any, dict[str, Any]]]
_M = TypeVar("_M", bound="Module")


class StateDictError(KeyError, ValueError):
    """A ``state_dict`` does not fit the model (missing or unexpected keys).

    Both a ``KeyError`` and a ``ValueError``, so either ``except`` clause catches it; its
    message is shown as written (``KeyError`` would quote it).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (torch's return value)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model.

    Subclasses register arrays with :meth:`register_parameter` (trainable) and
    :meth:`register_buffer` (state such as running statistics), assign sub-modules as
    attributes, and implement :meth:`forward` and :meth:`forward_vjp`.
    """

    training: bool
    _parameters: dict[str, Any]
    _buffers: dict[str, Any]
    _modules: dict[str, Module]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # -- registration ---------------------------------------------------------------------

    def register_parameter(self, name: str, value: Any) -> None:
        """Add a trainable array (or ``None``, e.g. a disabled bias)."""
        self._check_name(name)
        self._parameters[name] = value

    def register_buffer(self, name: str, value: Any) -> None:
        """Add a non-trainable array that belongs in the ``state_dict``."""
        self._check_name(name)
        self._buffers[name] = value

    def register_module(self, name: str, module: Module) -> None:
        """Add a child module."""
        if not isinstance(module, Module):
            raise TypeError(f"module: expected an xpnet Module, got {type(module).__name__}")
        self._modules[name] = module

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"name: expected a non-empty str without '.', got {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Module):
            self._modules[name] = value
        elif name in self._parameters:
            self._parameters[name] = value
        elif name in self._buffers:
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            table = self.__dict__.get(registry)
            if table is not None and name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # -- traversal ------------------------------------------------------------------------

    def children(self) -> Iterator[tuple[str, Module]]:
        """Yield ``(name, child)`` for the direct sub-modules."""
        yield from self._modules.items()

    def modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Yield ``(qualified name, module)`` for this module and all below it."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self) -> dict[str, Any]:
        """Trainable arrays by qualified name (``"0.weight"``), skipping ``None`` ones."""
        return {
            f"{path}.{name}" if path else name: value
            for path, module in self.modules()
            for name, value in module._parameters.items()
            if value is not None
        }

    def named_buffers(self) -> dict[str, Any]:
        """Buffers by qualified name (``"1.running_mean"``)."""
        return {
            f"{path}.{name}" if path else name: value
            for path, module in self.modules()
            for name, value in module._buffers.items()
            if value is not None
        }

    def _owner(self, qualified: str) -> tuple[Module, str]:
        path, _, leaf = qualified.rpartition(".")
        module: Module = self
        for part in path.split(".") if path else []:
            if part not in module._modules:
                raise KeyError(f"no sub-module {part!r} on the way to {qualified!r}")
            module = module._modules[part]
        return module, leaf

    def set_parameter(self, qualified: str, value: Any) -> None:
        """Replace a parameter by qualified name (what optimizers call)."""
        module, leaf = self._owner(qualified)
        if leaf not in module._parameters:
            raise KeyError(f"{qualified!r} is not a parameter of this model")
        module._parameters[leaf] = value

    def set_buffer(self, qualified: str, value: Any) -> None:
        """Replace a buffer by qualified name."""
        module, leaf = self._owner(qualified)
        if leaf not in module._buffers:
            raise KeyError(f"{qualified!r} is not a buffer of this model")
        module._buffers[leaf] = value

    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(math.prod(p.shape) for p in self.named_parameters().values())

    # -- modes ----------------------------------------------------------------------------

    def train(self: _M, mode: bool = True) -> _M:
        """Set training mode (dropout active, batch norm uses batch statistics)."""
        for _, module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self: _M) -> _M:
        """Set inference mode."""
        return self.train(False)

    # -- computation ----------------------------------------------------------------------

    def forward(self, x: Any) -> Any:
        """Compute the output."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        """Compute the output and a pullback ``dy -> (dx, {param name: gradient})``.

        With ``input_grad=False`` the caller does not need ``dx``: layers that can skip
        computing it (convolutions, linear layers) do, and return ``None`` in its place.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_vjp")

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    def extra_repr(self) -> str:
        """The arguments shown inside this module's ``repr``."""
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        lines.append(")")
        return "\n".join(lines)

    # -- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Parameters and buffers by torch's qualified names, in registration order."""
        state: dict[str, Any] = {}
        for path, module in self.modules():
            for table in (module._parameters, module._buffers):
                for name, value in table.items():
                    if value is not None:
                        state[f"{path}.{name}" if path else name] = value
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Load parameters and buffers, keeping each one's dtype, backend and device.

        Parameters
        ----------
        state : mapping
            Qualified name to array: NumPy arrays, arrays of any backend, or anything
            :func:`xpnet.asarray` accepts (a torch ``state_dict`` converted with
            ``{k: v.numpy() for k, v in sd.items()}`` loads directly).
        strict : bool, default True
            Require exactly the model's keys.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, as torch returns; both empty when
            ``strict``.

        Raises
        ------
        StateDictError
            (a ``KeyError`` and a ``ValueError``) listing missing and unexpected keys with
            their shapes, when ``strict``.
        ValueError
            Listing every key whose shape differs, with both shapes.

        Nothing is assigned unless every entry loads.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                listed = ", ".join(f"{k} {_shape(own[k])}" for k in missing)
                parts.append(f"missing keys: {listed}")
            if unexpected:
                listed = ", ".join(f"{k} {_shape(state[k])}" for k in unexpected)
                parts.append(f"unexpected keys: {listed}")
            raise StateDictError(
                "state_dict does not match this model (another architecture?): " + "; ".join(parts)
            )
        mismatched = [
            f"{key}: state_dict has {_shape(state[key])}, model has {_shape(value)}"
            for key, value in own.items()
            if key in state and _shape(state[key]) != _shape(value)
        ]
        if mismatched:
            raise ValueError("state_dict shapes do not match this model: " + "; ".join(mismatched))
        # Convert everything first, so a failure leaves the model untouched.
        converted = {
            key: _like(state[key], current) for key, current in own.items() if key in state
        }
        self._assign(converted)
        return IncompatibleKeys(missing, unexpected)

    def _assign(self, values: Mapping[str, Any]) -> None:
        parameters = self.named_parameters()
        for key, value in values.items():
            if key in parameters:
                self.set_parameter(key, value)
            else:
                self.set_buffer(key, value)

    def to(
        self: _M, backend: str | None = None, device: Any = None, dtype: str | None = None
    ) -> _M:
        """Move every parameter and buffer to a backend, device and/or floating dtype.

        Parameters
        ----------
        backend : str, optional
            Registry name, e.g. ``"cupy"``; the active backend if omitted.
        device : optional
            Device on that backend; its default device if omitted.
        dtype : {"float32", "float64"}, optional
            New dtype for floating-point arrays (integer buffers keep theirs).

        Returns
        -------
        Module
            ``self``, for chaining.

        Notes
        -----
        Arrays travel through host memory. An optimizer built on this model follows on
        its next step (its state is moved to where each parameter now lives).
        """
        if dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype: expected 'float32', 'float64' or None, got {dtype!r}")
        name = backend if backend is not None else backends.get_backend().name
        moved = {}
        with backends.use_backend(name, device):
            for key, value in self.state_dict().items():
                host = _writable_host(value)
                target = dtype if dtype is not None and host.dtype.kind == "f" else str(host.dtype)
                moved[key] = backends.asarray(host, dtype=target)
        self._assign(moved)
        return self

    def summary(self, input_shape: tuple[int, ...]) -> str:
        """A table of layers, output shapes and parameter counts for one input shape.

        Runs one forward pass on zeros of ``input_shape`` (in inference mode, so batch-norm
        statistics stay as they are; every module's mode is restored afterwards).
        :class:`Sequential` containers are expanded into their layers.

        Parameters
        ----------
        input_shape : tuple of int
            E.g. ``(1, 1, 28, 28)``.

        Returns
        -------
        str
            One row per layer (qualified name, type, output shape, parameter count), then
            the total number of trainable parameters.
        """
        params = list(self.named_parameters().values())
        if params:
            xp = array_api_compat.array_namespace(params[0])
            x = xp.zeros(
                tuple(input_shape), dtype=params[0].dtype, device=array_api_compat.device(params[0])
            )
        else:
            x = backends.asarray(backends.get_namespace().zeros(tuple(input_shape)), "float32")
        rows = [("input", "", tuple(input_shape), 0)]
        modes = [(module, module.training) for _, module in self.modules()]
        self.eval()
        try:
            for name, layer in _leaves(self):
                try:
                    x = layer.forward(x)
                except (ValueError, TypeError) as exc:
                    raise _rewrapped(exc, f"layer {name} ({type(layer).__name__})") from exc
                rows.append((name, type(layer).__name__, tuple(x.shape), layer.num_parameters()))
        finally:
            for module, mode in modes:
                object.__setattr__(module, "training", mode)
        header = ("layer", "type", "output shape", "parameters")
        table = [header] + [(n, t, str(s), f"{c:,}") for n, t, s, c in rows]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        ]
        rule = "-" * max(len(line) for line in lines)
        lines.insert(1, rule)
        lines.append(rule)
        lines.append(f"total parameters: {self.num_parameters():,}")
        return "\n".join(lines)


def _leaves(module: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    """The modules a :class:`Sequential` chain runs one after another, flattened."""
    if isinstance(module, Sequential):
        for name, child in module.children():
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix or type(module).__name__, module


def _like(value: Any, current: Any) -> Any:
    """``value`` converted to ``current``'s namespace, device and dtype."""
    xp = array_api_compat.array_namespace(current)
    device = array_api_compat.device(current)
    if array_api_compat.is_array_api_obj(value) and array_api_compat.array_namespace(value) is xp:
        source = value
    else:
        source = xp.asarray(_writable_host(value), device=device)
    return xp.astype(xp.asarray(source, device=device), current.dtype, copy=True)


def _writable_host(value: Any) -> Any:
    """A host (NumPy) copy of ``value`` that may be written to.

    JAX hands out read-only host views, and torch warns when wrapping those.
    """
    host = backends.to_numpy(value)
    return host if host.flags.writeable else host.copy()


def _shape(value: Any) -> tuple[int, ...]:
    """The shape of an array of any backend, or of host data such as nested lists."""
    shape = getattr(value, "shape", None)
    if shape is None:
        shape = backends.to_numpy(value).shape
    return tuple(int(n) for n in shape)


def _rewrapped(exc: Exception, context: str) -> Exception:
    """``exc`` with ``context`` in front of its message, keeping its type where possible."""
    message = f"{context}: {exc}"
    try:
        return type(exc)(message)
    except Exception:  # an exception type whose constructor takes other arguments
        return (TypeError if isinstance(exc, TypeError) else ValueError)(message)


def forward_vjp(module: Module, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
    """``module.forward_vjp(x, input_grad=...)``, also for modules written before the
    ``input_grad`` argument existed (they are called without it and compute ``dx``)."""
    if input_grad or not _takes_input_grad(type(module)):
        return module.forward_vjp(x)
    return module.forward_vjp(x, input_grad=False)


_takes_input_grad_cache: dict[type, bool] = {}


def _takes_input_grad(cls: type[Module]) -> bool:
    known = _takes_input_grad_cache.get(cls)
    if known is None:
        known = "input_grad" in inspect.signature(cls.forward_vjp).parameters
        _takes_input_grad_cache[cls] = known
    return known


def _prefixed(prefix: str, grads: dict[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{name}": grad for name, grad in grads.items()}


class Sequential(Module):
    """Run modules one after another; children are named ``"0"``, ``"1"``, ...

    Errors from a child are re-raised with the child's name and type, so a wrong input
    shape says which layer refused it.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for index, layer in enumerate(layers):
            self.register_module(str(index), layer)

    def __len__(self) -> int:
        return len(self._modules)

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Module:
        """The layer at ``index``, or a new ``Sequential`` of a slice (sharing the layers)."""
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*modules[index])
        return modules[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, layer: Module) -> Sequential:
        """Add a layer at the end."""
        self.register_module(str(len(self._modules)), layer)
        return self

    def forward(self, x: Any) -> Any:
        for name, layer in self._modules.items():
            try:
                x = layer.forward(x)
            except (ValueError, TypeError) as exc:
                raise _rewrapped(exc, f"layer {name} ({type(layer).__name__})") from exc
        return x

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        pullbacks: list[tuple[str, ModulePullback]] = []
        for index, (name, layer) in enumerate(self._modules.items()):
            try:
                # Only the first layer sees the caller's input; every later one's input
                # gradient feeds the layer before it.
                x, layer_pullback = forward_vjp(layer, x, input_grad=input_grad or index > 0)
            except (ValueError, TypeError) as exc:
                raise _rewrapped(exc, f"layer {name} ({type(layer).__name__})") from exc
            pullbacks.append((name, layer_pullback))

        def pullback(dy: Any) -> tuple[Any, dict[str, Any]]:
            grads: dict[str, Any] = {}
            for name, step in reversed(pullbacks):
                dy, local = step(dy)
                grads.update(_prefixed(name, local))
            return dy, grads

        return x, pullback


class Residual(Module):
    """``y = body(x) + shortcut(x)`` (identity shortcut by default), as in ResNet blocks.

    Its entries are named ``body.*`` and ``shortcut.*``, like the attributes of the usual
    hand-written torch block, so such a block's ``state_dict`` loads directly.

    Parameters
    ----------
    body : Module
        The main branch.
    shortcut : Module, optional
        The projection branch (e.g. a 1x1 ``Conv2d`` when shapes change).
    """

    def __init__(self, body: Module, shortcut: Module | None = None) -> None:
        super().__init__()
        self.register_module("body", body)
        if shortcut is not None:
            self.register_module("shortcut", shortcut)

    def _shortcut(self) -> Module | None:
        shortcut: Module | None = self._modules.get("shortcut")
        return shortcut

    def _branch(self, which: str, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except (ValueError, TypeError) as exc:
            raise _rewrapped(exc, which) from exc

    def forward(self, x: Any) -> Any:
        shortcut = self._shortcut()
        out = self._branch("body", lambda: self.body.forward(x))
        skip = x if shortcut is None else self._branch("shortcut", lambda: shortcut.forward(x))
        _check_residual_shapes(out, skip)
        return out + skip

    def forward_vjp(self, x: Any, input_grad: bool = True) -> tuple[Any, ModulePullback]:
        out, body_pullback = self._branch("body", lambda: self.body.forward_vjp(x))
        shortcut = self._shortcut()
        skip_pullback: ModulePullback | None = None
        if shortcut is None:
            skip = x
        else:
            skip, skip_pullback = self._branch("shortcut", lambda: shortcut.forward_vjp(x))
        _check_residual_shapes(out, skip)

        def pullback(dy: Any) -> tuple[Any, dict[str, Any]]:
            dx, body_grads = body_pullback(dy)
            grads = _prefixed("body", body_grads)
            if skip_pullback is None:
                return dx + dy, grads
            dskip, skip_grads = skip_pullback(dy)
            grads.update(_prefixed("shortcut", skip_grads))
            return dx + dskip, grads

        return out + skip, pullback


def _check_residual_shapes(out: Any, skip: Any) -> None:
    if tuple(out.shape) != tuple(skip.shape):
        raise ValueError(
            f"Residual: body output {tuple(out.shape)} and shortcut output "
            f"{tuple(skip.shape)} differ; give the block a shortcut that matches"
        )
