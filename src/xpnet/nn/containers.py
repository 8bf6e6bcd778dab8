"""Containers: :class:`Sequential`, :class:`ModuleList`, :class:`ModuleDict` and the
:class:`Residual` convenience, with torch's names and ``state_dict`` keys."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, overload

from .module import Module, rewrapped

__all__ = ["ModuleDict", "ModuleList", "Residual", "Sequential"]


def _checked(module: Any, where: str) -> Module:
    if not isinstance(module, Module):
        raise TypeError(f"{where}: expected an xpnet Module, got {type(module).__name__}")
    return module


class Sequential(Module):
    """Run modules one after another; children are named ``"0"``, ``"1"``, ...

    Errors from a child are re-raised with the child's name and type, so a wrong input
    shape says which layer refused it. An empty ``Sequential()`` returns its input (the
    identity shortcut of torch's ResNet code).
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for index, layer in enumerate(layers):
            self.register_module(str(index), _checked(layer, f"layers[{index}]"))

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
        self.register_module(str(len(self._modules)), _checked(layer, "layer"))
        return self

    def forward(self, x: Any) -> Any:
        for name, layer in self._modules.items():
            try:
                x = layer(x)
            except (ValueError, TypeError) as exc:
                raise rewrapped(exc, f"layer {name} ({type(layer).__name__})") from exc
        return x


class ModuleList(Module):
    """A list of modules, registered under ``"0"``, ``"1"``, ... (torch's
    ``nn.ModuleList``): indexable, iterable, with ``append``, ``extend`` and ``insert``.
    It has no ``forward``; the module holding it decides how its entries run."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _renumber(self, modules: list[Module]) -> None:
        self._modules.clear()
        for index, module in enumerate(modules):
            self._modules[str(index)] = module

    def __len__(self) -> int:
        return len(self._modules)

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> ModuleList: ...

    def __getitem__(self, index: int | slice) -> Module:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[index]

    def __setitem__(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules[index] = _checked(module, "module")
        self._renumber(modules)

    def __delitem__(self, index: int | slice) -> None:
        modules = list(self._modules.values())
        del modules[index]
        self._renumber(modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> ModuleList:
        """Add a module at the end."""
        self._modules[str(len(self._modules))] = _checked(module, "module")
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Add modules at the end."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert a module before ``index``."""
        modules = list(self._modules.values())
        modules.insert(index, _checked(module, "module"))
        self._renumber(modules)


class ModuleDict(Module):
    """Modules by name (torch's ``nn.ModuleDict``), in insertion order: ``d[key]``,
    ``d[key] = module``, ``keys``, ``values``, ``items``, ``update``, ``pop``."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.register_module(key, _checked(module, f"modules[{key!r}]"))

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add or replace modules from a mapping or ``(name, module)`` pairs."""
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in pairs:
            self[key] = module

    def pop(self, key: str) -> Module:
        """Remove and return the module under ``key``."""
        return self._modules.pop(key)

    def clear(self) -> None:
        self._modules.clear()


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
        self.register_module("body", _checked(body, "body"))
        if shortcut is not None:
            self.register_module("shortcut", _checked(shortcut, "shortcut"))

    def forward(self, x: Any) -> Any:
        try:
            out = self.body(x)
        except (ValueError, TypeError) as exc:
            raise rewrapped(exc, "body") from exc
        shortcut = self._modules.get("shortcut")
        try:
            skip = x if shortcut is None else shortcut(x)
        except (ValueError, TypeError) as exc:
            raise rewrapped(exc, "shortcut") from exc
        if tuple(out.shape) != tuple(skip.shape):
            raise ValueError(
                f"Residual: body output {tuple(out.shape)} and shortcut output "
                f"{tuple(skip.shape)} differ; give the block a shortcut that matches"
            )
        return out + skip
