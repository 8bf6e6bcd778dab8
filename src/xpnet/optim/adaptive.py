"""Per-element adaptive rules: RMSprop, Adagrad and Adadelta, exactly as ``torch.optim``
computes them (on a group's flat buffers, like the rules of :mod:`.rules`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import array_api_compat

from .._numbers import real
from ..nn.module import Module
from ._groups import non_negative
from .optimizer import Optimizer
from .rules import _flag, _lerp

__all__ = ["Adadelta", "Adagrad", "RMSprop"]


def _decayed(grad: Any, param: Any, options: Mapping[str, Any]) -> Any:
    """The gradient torch's rules start from: negated for ``maximize``, plus the L2 term."""
    if options["maximize"]:
        grad = -grad
    if options["weight_decay"]:
        grad = grad + options["weight_decay"] * param
    return grad


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), exactly as ``torch.optim.RMSprop``.

    A running mean of squared gradients, optionally centred (minus the squared running
    mean), with momentum and L2 ``weight_decay``:

    .. code-block:: text

        v = alpha * v + (1 - alpha) * g^2
        m = m + (1 - alpha) * (g - m)             (centered)
        d = sqrt(v - m^2) + eps  (centered), else sqrt(v) + eps
        b = momentum * b + g / d;  p = p - lr * b (momentum > 0), else p = p - lr * g / d
    """

    slots = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def __init__(
        self,
        model: Module,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        param_groups: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            model,
            lr,
            param_groups,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )

    def _option_names(self) -> tuple[str, ...]:
        return ("alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def _check(self, options: dict[str, Any], where: str) -> dict[str, Any]:
        checked = super()._check(options, where)
        alpha = real(checked["alpha"])
        if alpha is None or not 0 <= alpha <= 1:
            raise ValueError(f"{where}alpha: expected a value in [0, 1], got {checked['alpha']!r}")
        checked["alpha"] = alpha
        for name in ("eps", "weight_decay", "momentum"):
            checked[name] = non_negative(f"{where}{name}", checked[name])
        checked["centered"] = _flag(f"{where}centered", checked["centered"])
        checked["maximize"] = _flag(f"{where}maximize", checked["maximize"])
        return checked

    def _initial_state(self, param: Any, options: Mapping[str, Any]) -> dict[str, Any]:
        # Zeros are what torch starts every buffer from.
        xp = array_api_compat.array_namespace(param)
        slots = ["square_avg"]
        if options["momentum"] > 0:
            slots.append("momentum_buffer")
        if options["centered"]:
            slots.append("grad_avg")
        return {slot: xp.zeros_like(param) for slot in slots}

    def _update(
        self,
        param: Any,
        grad: Any,
        state: dict[str, Any],
        scalars: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> Any:
        xp = array_api_compat.array_namespace(param)
        alpha = options["alpha"]
        grad = _decayed(grad, param, options)
        zeros = xp.zeros_like(param)
        square_avg = alpha * state.get("square_avg", zeros) + (1.0 - alpha) * (grad * grad)
        state["square_avg"] = square_avg
        if options["centered"]:
            grad_avg = _lerp(state.get("grad_avg", zeros), grad, 1.0 - alpha)
            state["grad_avg"] = grad_avg
            denominator = xp.sqrt(square_avg - grad_avg * grad_avg) + options["eps"]
        else:
            denominator = xp.sqrt(square_avg) + options["eps"]
        if options["momentum"] > 0:
            buffer = options["momentum"] * state.get("momentum_buffer", zeros) + grad / denominator
            state["momentum_buffer"] = buffer
            return param - scalars["lr"] * buffer
        return param - scalars["lr"] * (grad / denominator)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011), exactly as ``torch.optim.Adagrad``.

    The sum of squared gradients scales each step, and the rate decays as
    ``lr / (1 + (step - 1) * lr_decay)``:

    .. code-block:: text

        s = s + g^2;  p = p - lr_t * g / (sqrt(s) + eps)
    """

    slots = ("step", "sum")

    def __init__(
        self,
        model: Module,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        param_groups: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            model,
            lr,
            param_groups,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )

    def _option_names(self) -> tuple[str, ...]:
        return ("lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize")

    def _check(self, options: dict[str, Any], where: str) -> dict[str, Any]:
        checked = super()._check(options, where)
        for name in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            checked[name] = non_negative(f"{where}{name}", checked[name])
        checked["maximize"] = _flag(f"{where}maximize", checked["maximize"])
        return checked

    def _scalars(self, step: int, options: Mapping[str, Any]) -> dict[str, float]:
        return {"lr": options["lr"] / (1.0 + (step - 1) * options["lr_decay"])}

    def _initial_state(self, param: Any, options: Mapping[str, Any]) -> dict[str, Any]:
        xp = array_api_compat.array_namespace(param)
        return {"sum": xp.full_like(param, options["initial_accumulator_value"])}

    def _update(
        self,
        param: Any,
        grad: Any,
        state: dict[str, Any],
        scalars: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> Any:
        xp = array_api_compat.array_namespace(param)
        grad = _decayed(grad, param, options)
        total = state.get("sum")
        if total is None:
            total = self._initial_state(param, options)["sum"]
        total = total + grad * grad
        state["sum"] = total
        return param - scalars["lr"] * (grad / (xp.sqrt(total) + options["eps"]))


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012), exactly as ``torch.optim.Adadelta``.

    Steps are scaled by the running root mean squares of past updates and of gradients:

    .. code-block:: text

        v = rho * v + (1 - rho) * g^2
        d = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * d^2;  p = p - lr * d
    """

    slots = ("step", "square_avg", "acc_delta")

    def __init__(
        self,
        model: Module,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        param_groups: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            model,
            lr,
            param_groups,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
        )

    def _option_names(self) -> tuple[str, ...]:
        return ("rho", "eps", "weight_decay", "maximize")

    def _check(self, options: dict[str, Any], where: str) -> dict[str, Any]:
        checked = super()._check(options, where)
        rho = real(checked["rho"])
        if rho is None or not 0 <= rho <= 1:
            raise ValueError(f"{where}rho: expected a value in [0, 1], got {checked['rho']!r}")
        checked["rho"] = rho
        checked["eps"] = non_negative(f"{where}eps", checked["eps"])
        checked["weight_decay"] = non_negative(f"{where}weight_decay", checked["weight_decay"])
        checked["maximize"] = _flag(f"{where}maximize", checked["maximize"])
        return checked

    def _initial_state(self, param: Any, options: Mapping[str, Any]) -> dict[str, Any]:
        xp = array_api_compat.array_namespace(param)
        return {"square_avg": xp.zeros_like(param), "acc_delta": xp.zeros_like(param)}

    def _update(
        self,
        param: Any,
        grad: Any,
        state: dict[str, Any],
        scalars: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> Any:
        xp = array_api_compat.array_namespace(param)
        rho, eps = options["rho"], options["eps"]
        grad = _decayed(grad, param, options)
        zeros = xp.zeros_like(param)
        square_avg = rho * state.get("square_avg", zeros) + (1.0 - rho) * (grad * grad)
        acc_delta = state.get("acc_delta", zeros)
        delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * grad
        state["square_avg"] = square_avg
        state["acc_delta"] = rho * acc_delta + (1.0 - rho) * (delta * delta)
        return param - scalars["lr"] * delta
