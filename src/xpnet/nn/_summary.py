"""``Module.summary``: the layers a model's forward calls, with their output shapes,
parameters and floating-point operations."""

from __future__ import annotations

from typing import Any

import array_api_compat

from .. import backends
from .containers import ModuleDict, ModuleList, Sequential
from .layers import (
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    Linear,
)
from .module import Module, call_observer

# Pure containers get no row of their own: their layers are listed with qualified names.
_CONTAINERS = (Sequential, ModuleList, ModuleDict)

__all__ = ["Summary", "layer_flops", "summary_table"]


class Summary(str):
    """The summary table: a ``str`` that shows itself as the table at the prompt."""

    def __repr__(self) -> str:
        return str(self)


def _numel(shape: Any) -> int:
    count = 1
    for n in shape:
        count *= int(n)
    return count


def layer_flops(module: Module, inputs: tuple[Any, ...], output: Any) -> int | None:
    """Floating-point operations of one call of a convolution or linear layer, two per
    multiply-add (bias additions and elementwise layers are not counted); ``None`` for
    other modules."""
    if isinstance(module, (Conv1d, Conv2d, Conv3d)):
        per_output = module.in_channels // module.groups * _numel(module.kernel_size)
        return 2 * _numel(output.shape) * per_output
    if isinstance(module, (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)):
        per_input = module.out_channels // module.groups * _numel(module.kernel_size)
        return 2 * _numel(inputs[0].shape) * per_input
    if isinstance(module, Linear):
        return 2 * _numel(output.shape) * module.in_features
    return None


def _count(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f}"


def _shape_text(output: Any) -> str:
    if isinstance(output, tuple | list):
        return ", ".join(_shape_text(item) for item in output)
    shape = getattr(output, "shape", None)
    return str(tuple(int(n) for n in shape)) if shape is not None else type(output).__name__


def summary_table(model: Module, input_shape: tuple[int, ...]) -> Summary:
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
    rows: list[tuple[str, str, str, int, int | None]] = [
        ("input", "", str(tuple(input_shape)), 0, None)
    ]
    total_flops = 0

    def observe(module: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        nonlocal total_flops
        if module is model or isinstance(module, _CONTAINERS):
            return module.forward(*args, **kwargs)  # its layers are listed as they run
        name = names.get(id(module)) or type(module).__name__
        row = len(rows)
        rows.append((name, type(module).__name__, "", module.num_parameters(), None))
        # A block's own layers are listed after it; a layer's own calls are its business.
        token = call_observer.set(observe if module._modules else None)
        try:
            output = module.forward(*args, **kwargs)
        finally:
            call_observer.reset(token)
        flops = layer_flops(module, args, output)
        total_flops += flops or 0
        kind, shape = type(module).__name__, _shape_text(output)
        rows[row] = (name, kind, shape, module.num_parameters(), flops)
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
    header = ("layer", "type", "output shape", "parameters", "FLOPs")
    table = [header] + [
        (n, t, s, f"{c:,}", "" if f is None else f"{f:,}") for n, t, s, c, f in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    rule = "-" * max(len(line) for line in lines)
    lines.insert(1, rule)
    lines.append(rule)
    lines.append(f"total parameters: {model.num_parameters():,}")
    lines.append(
        f"total FLOPs: {total_flops:,} ({_count(total_flops)}FLOPs; 2 per multiply-add of the "
        f"convolutions and linear layers, for input shape {tuple(input_shape)})"
    )
    return Summary("\n".join(lines))
