"""Modules: layers and models that hold parameters and define ``forward``.

A :class:`Module` keeps its parameters and buffers as plain arrays of the backend in use.
Arrays need not be mutable (JAX's are not), so nothing is updated in place: optimizers and
batch-norm statistics *replace* arrays through :meth:`Module.set_parameter` and
:meth:`Module.set_buffer`.

A module defines only ``forward``, written with the ops of :mod:`xpnet.functional`, other
modules, the arrays' operators and indexing, and the functions of their namespace.
Gradients come from recording it as it runs (:func:`xpnet.value_and_grad`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, NamedTuple, TypeVar

import array_api_compat

from .. import backends
from ..functional._autodiff import primal
from ._conversion import loaded_like, parse_to, shape_of, writable_host

__all__ = ["IncompatibleKeys", "Module", "StateDictError"]

_M = TypeVar("_M", bound="Module")

#: Called instead of ``forward`` by every module call while set (``Module.summary``
#: records the layers a forward runs with it): ``(module, args, kwargs) -> output``.
call_observer: ContextVar[Callable[[Module, tuple[Any, ...], dict[str, Any]], Any] | None] = (
    ContextVar("xpnet_call_observer", default=None)
)


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
    attributes, and implement :meth:`forward`, taking whatever arguments they need.

    Examples
    --------
    A residual block written as in torch; its gradients need nothing more:

    >>> import xpnet, xpnet.functional as F
    >>> from xpnet import nn
    >>> class Block(nn.Module):
    ...     def __init__(self, channels):
    ...         super().__init__()
    ...         self.conv = nn.Conv2d(channels, channels, 3, padding=1, rng=0)
    ...     def forward(self, x):
    ...         return F.relu(self.conv(x) + x)
    >>> block = Block(2)
    >>> x = xpnet.asarray([[[[1.0] * 4] * 4] * 2])
    >>> loss, grads = xpnet.value_and_grad(block, F.mse_loss, x, x)
    >>> list(grads), grads["conv.weight"].shape
    (['conv.weight', 'conv.bias'], (2, 2, 3, 3))
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "forward_vjp" in cls.__dict__:
            warnings.warn(
                f"{cls.__name__}.forward_vjp is not used: gradients come from recording "
                "forward (xpnet.value_and_grad); define forward only",
                UserWarning,
                stacklevel=2,
            )

    # -- registration ---------------------------------------------------------------------

    def register_parameter(self, name: str, value: Any) -> None:
        """Add a trainable array (or ``None``, e.g. a disabled bias)."""
        self._check_name(name)
        self._parameters[name] = value

    def register_buffer(self, name: str, value: Any) -> None:
        """Add a non-trainable array that belongs in the ``state_dict``."""
        self._check_name(name)
        self._buffers[name] = primal(value)

    def register_module(self, name: str, module: Module | None) -> None:
        """Add a child module (``None`` leaves a named empty slot, as in torch)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"module: expected an xpnet Module, got {type(module).__name__}")
        self._check_name(name)
        if module is None:
            self._modules.pop(name, None)
            return
        self._modules[name] = module

    add_module = register_module

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"name: expected a non-empty str without '.', got {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Module):
            self._modules[name] = value
        elif name in self._parameters:
            self._parameters[name] = value
        elif name in self._buffers:
            # Buffers are state, never part of a gradient: keep the value only.
            self._buffers[name] = primal(value)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: look in the registries.
        for registry in ("_parameters", "_buffers", "_modules"):
            table = self.__dict__.get(registry)
            if table is not None and name in table:
                return table[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    # -- traversal (torch's names and results) ----------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Yield ``(name, child)`` for the direct sub-modules."""
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        """Yield the direct sub-modules."""
        for _, child in self.named_children():
            yield child

    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """Yield ``(qualified name, module)`` for this module and every one below it
        (``""`` for this one); a module reached twice is yielded once unless
        ``remove_duplicate`` is False."""
        if memo is None:
            memo = set()
        # Depth first, children in registration order, without a generator per level.
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            path, module = stack.pop()
            if remove_duplicate:
                if id(module) in memo:
                    continue
                memo.add(id(module))
            yield path, module
            children = list(module._modules.items())
            for name, child in reversed(children):
                stack.append((f"{path}.{name}" if path else name, child))

    def modules(self) -> Iterator[Module]:
        """Yield this module and every module below it, each once."""
        for _, module in self.named_modules():
            yield module

    def _named_arrays(
        self, table: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any]]:
        walk = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else iter([(prefix, self)])
        )
        for path, module in walk:
            for name, value in getattr(module, table).items():
                if value is not None:
                    yield (f"{path}.{name}" if path else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Any]]:
        """Yield ``(qualified name, array)`` for every trainable array (``"0.weight"``),
        skipping ``None`` ones, as torch does. ``dict(model.named_parameters())`` maps
        names to arrays."""
        return self._named_arrays("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Any]:
        """Yield every trainable array."""
        for _, value in self.named_parameters(recurse=recurse):
            yield value

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Any]]:
        """Yield ``(qualified name, array)`` for every buffer (``"1.running_mean"``)."""
        return self._named_arrays("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Any]:
        """Yield every buffer."""
        for _, value in self.named_buffers(recurse=recurse):
            yield value

    def get_submodule(self, target: str) -> Module:
        """The module at a qualified name (``""`` for this one)."""
        module: Module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"no sub-module {part!r} on the way to {target!r}")
            module = module._modules[part]
        return module

    def _owner(self, qualified: str) -> tuple[Module, str]:
        path, _, leaf = qualified.rpartition(".")
        try:
            return self.get_submodule(path), leaf
        except AttributeError as exc:
            raise KeyError(str(exc)) from None

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
        module._buffers[leaf] = primal(value)

    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(math.prod(p.shape) for p in self.parameters())

    # -- modes ----------------------------------------------------------------------------

    def train(self: _M, mode: bool = True) -> _M:
        """Set training mode (dropout active, batch norm uses batch statistics)."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self: _M) -> _M:
        """Set inference mode."""
        return self.train(False)

    def apply(self: _M, fn: Callable[[Module], Any]) -> _M:
        """Call ``fn`` on every sub-module (children first) and then on this module, as
        torch does (e.g. to initialise weights)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- computation ----------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the output."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        observer = call_observer.get()
        if observer is None:
            return self.forward(*args, **kwargs)
        return observer(self, args, kwargs)

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
        """Parameters and buffers by torch's qualified names, in registration order (a
        module reached under two names appears under both, as in torch)."""
        state: dict[str, Any] = {}
        for path, module in self.named_modules(remove_duplicate=False):
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
        if not isinstance(state, Mapping):
            raise TypeError(
                "state: expected a mapping of parameter names to arrays (a state_dict), got "
                f"{type(state).__name__}"
            )
        odd = [k for k in state if not isinstance(k, str)]
        if odd:
            raise TypeError(
                f"state: its keys must be parameter names (strings), got {odd[0]!r} "
                f"({type(odd[0]).__name__})"
            )
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                listed = ", ".join(f"{k} {shape_of(own[k])}" for k in missing)
                parts.append(f"missing keys: {listed}")
            if unexpected:
                listed = ", ".join(f"{k} {shape_of(state[k])}" for k in unexpected)
                parts.append(f"unexpected keys: {listed}")
            raise StateDictError(
                "state_dict does not match this model (another architecture?): " + "; ".join(parts)
            )
        mismatched = [
            f"{key}: state_dict has {shape_of(state[key])}, model has {shape_of(value)}"
            for key, value in own.items()
            if key in state and shape_of(state[key]) != shape_of(value)
        ]
        if mismatched:
            raise ValueError("state_dict shapes do not match this model: " + "; ".join(mismatched))
        # Convert everything first, so a failure leaves the model untouched.
        converted = {
            key: loaded_like(key, state[key], current)
            for key, current in own.items()
            if key in state
        }
        # A weight is never infinite (a buffer may be: an attention mask's -inf).
        parameters = {name for name, _ in self.named_parameters()}
        for key in [key for key in converted if key in parameters]:
            xp = array_api_compat.array_namespace(converted[key])
            if xp.isdtype(converted[key].dtype, "real floating") and bool(
                xp.any(xp.isinf(converted[key]))
            ):
                raise ValueError(f"{key}: holds infinite values; a damaged or diverged state_dict?")
        self._assign(converted)
        return IncompatibleKeys(missing, unexpected)

    def _assign(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            module, leaf = self._owner(key)
            if leaf in module._parameters:
                module._parameters[leaf] = value
            else:
                module._buffers[leaf] = value

    def to(self: _M, *args: Any, **kwargs: Any) -> _M:
        """Move every parameter and buffer to a backend, a device and/or a floating dtype.

        Accepts torch's forms as well as xpnet's: ``to("cupy")`` (a backend, by its
        registry name), ``to("cuda")`` or ``to(device)`` (a device of the model's own
        backend), ``to(dtype="float64")`` or ``to("float64")``, and combinations such as
        ``to("torch", "cuda")`` or ``to(backend="torch", device="cuda", dtype="float32")``.

        Parameters
        ----------
        *args
            Backend names, devices and dtypes, recognised by what they are.
        backend : str, optional
            Registry name, e.g. ``"cupy"``; the model's own backend (or the active one for
            a model without arrays) if omitted.
        device : optional
            Device on that backend; its default device if omitted and the backend
            changes, the arrays' current device otherwise.
        dtype : {"float32", "float64"} or a dtype object of either, optional
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
        backend, device, dtype = parse_to(args, kwargs)
        current = self.state_dict()
        first = next(iter(current.values()), None)
        own = None if first is None else backends.backend_of(first)
        name = backend if backend is not None else (own or backends.get_backend().name)
        if device is None and backend is None and first is not None:
            device = array_api_compat.device(first)
        moved = {}
        with backends.use_backend(name, device):
            for key, value in current.items():
                host = writable_host(value)
                target = dtype if dtype is not None and host.dtype.kind == "f" else str(host.dtype)
                moved[key] = backends.asarray(host, dtype=target)
        self._assign(moved)
        return self

    def double(self: _M) -> _M:
        """Floating-point parameters and buffers in float64 (``to(dtype="float64")``)."""
        return self.to(dtype="float64")

    def float(self: _M) -> _M:
        """Floating-point parameters and buffers in float32 (``to(dtype="float32")``)."""
        return self.to(dtype="float32")

    def summary(self, input_shape: tuple[int, ...]) -> str:
        """A table of layers, output shapes, parameters and FLOPs for one input shape.

        Runs the model's own ``forward`` once on zeros of ``input_shape`` (in inference
        mode, so batch-norm statistics stay as they are; every module's mode is restored
        afterwards), and lists each module it called, in call order, with its output
        shape: a block (a module with sub-modules, e.g. a residual block) and then its
        layers, under their qualified names; containers (``Sequential``, ``ModuleList``,
        ``ModuleDict``) only through their entries. A module called twice is listed
        twice.

        Parameters
        ----------
        input_shape : tuple of int
            E.g. ``(1, 1, 28, 28)``.

        Returns
        -------
        str
            One row per layer call (qualified name, type, output shape, parameter count,
            and the floating-point operations of convolution and linear layers, two per
            multiply-add), then the totals. ``print`` it; at the interactive prompt it
            shows itself as the table.
        """
        from ._summary import summary_table

        return summary_table(self, input_shape)


def rewrapped(exc: Exception, context: str) -> Exception:
    """``exc`` with ``context`` in front of its message, keeping its type where possible."""
    message = f"{context}: {exc}"
    try:
        return type(exc)(message)
    except Exception:  # an exception type whose constructor takes other arguments
        return (TypeError if isinstance(exc, TypeError) else ValueError)(message)
