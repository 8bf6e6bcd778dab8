"""What the model builders share: the factory arguments and torchvision's initialisation."""

from __future__ import annotations

from typing import Any

from .. import nn
from ..nn import init
from ..random import resolve_rng

__all__ = ["Factory", "factory_of", "no_rng", "torchvision_init"]

Factory = dict[str, Any]


def factory_of(device: Any, dtype: str | None, rng: Any) -> Factory:
    """The layer arguments every builder passes on, with one generator for all layers (an
    int seed per layer would repeat the same numbers)."""
    return {"device": device, "dtype": dtype, "rng": resolve_rng(rng)}


def no_rng(factory: Factory) -> Factory:
    """``factory`` for layers that draw nothing (normalisation)."""
    return {k: v for k, v in factory.items() if k != "rng"}


def torchvision_init(
    model: nn.Module, factory: Factory, *, conv_mode: str = "fan_out",
    conv_nonlinearity: str = "relu", linear_std: float | None = None,
) -> None:  # fmt: skip
    """Re-draw the weights as torchvision's models initialise theirs: convolutions
    Kaiming-normal (``conv_mode``), their biases zero; batch/group norm scale 1, shift 0;
    linear layers N(0, ``linear_std``) with zero bias where given, else left as built."""
    dtype = factory.get("dtype") or "float32"
    device, rng = factory.get("device"), factory["rng"]
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            shape = tuple(int(s) for s in module.weight.shape)
            module.weight = init.kaiming_normal(
                shape, mode=conv_mode, nonlinearity=conv_nonlinearity, rng=rng, dtype=dtype,
                device=device,
            )  # fmt: skip
            if module.bias is not None:
                module.bias = init.zeros(tuple(module.bias.shape), dtype=dtype, device=device)
        elif isinstance(module, nn.Linear) and linear_std is not None:
            shape = tuple(int(s) for s in module.weight.shape)
            module.weight = init.normal(shape, 0.0, linear_std, rng=rng, dtype=dtype, device=device)
            if module.bias is not None:
                module.bias = init.zeros(tuple(module.bias.shape), dtype=dtype, device=device)
