"""``Module.summary``: the layers a model's forward calls, with their output shapes."""

from __future__ import annotations

from typing import Any

import array_api_compat

from .. import backends
from .containers import ModuleDict, ModuleList, Sequential
from .module import Module, call_observer

# Pure containers get no row of their own: their layers are listed with qualified names.
_CONTAINERS = (Sequential, ModuleList, ModuleDict)

__all__ = ["summary_table"]


def _shape_text(output: Any) -> str:
    if isinstance(output, tuple | list):
        return ", ".join(_shape_text(item) for item in output)
    shape = getattr(output, "shape", None)
    return str(tuple(int(n) for n in shape)) if shape is not None else type(output).__name__


def summary_table(model: Module, input_shape: tuple[int, ...]) -> str:
    """See :meth:`Module.summary`."""
    names = {id(module): name for name, module in model.named_modules()}
    params = list(model.parameters())
    if params:
        xp = array_api_compat.array_namespace(params[0])
        x = xp.zeros(
            tuple(input_shape), dtype=params[0].dtype, device=array_api_compat.device(params[0])
        )
    else:
        x = backends.asarray(backends.get_namespace().zeros(tuple(input_shape)), "float32")
    rows: list[tuple[str, str, str, int]] = [("input", "", str(tuple(input_shape)), 0)]

    def observe(module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if module is model or isinstance(module, _CONTAINERS):
            return module.forward(*args, **kwargs)  # its layers are listed as they run
        name = names.get(id(module)) or type(module).__name__
        row = len(rows)
        rows.append((name, type(module).__name__, "", module.num_parameters()))
        # A block's own layers are listed after it; a layer's own calls are its business.
        token = call_observer.set(observe if module._modules else None)
        try:
            output = module.forward(*args, **kwargs)
        finally:
            call_observer.reset(token)
        rows[row] = (name, type(module).__name__, _shape_text(output), module.num_parameters())
        return output

    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    token = call_observer.set(observe)
    try:
        model(x)
    finally:
        call_observer.reset(token)
        for module, mode in modes:
            object.__setattr__(module, "training", mode)
    header = ("layer", "type", "output shape", "parameters")
    table = [header] + [(n, t, s, f"{c:,}") for n, t, s, c in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    rule = "-" * max(len(line) for line in lines)
    lines.insert(1, rule)
    lines.append(rule)
    lines.append(f"total parameters: {model.num_parameters():,}")
    return "\n".join(lines)
