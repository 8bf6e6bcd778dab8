"""The update rules: SGD, Adam and AdamW, exactly as ``torch.optim`` computes them.

Each rule works on a group's flat buffers (see :mod:`.optimizer`), so one step costs the
same few array operations for any number of parameters (Adam: 14 launches on a GPU, plus
one to gather the gradients).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import array_api_compat

from .._numbers import flag, real
from ..nn.module import Module
from ._groups import non_negative
from .optimizer import Optimizer

__all__ = ["SGD", "Adam", "AdamW"]


def _probability(name: str, value: Any) -> float:
    number = real(value)
    if number is None or not 0.0 <= number < 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1), got {value!r}")
    return number


def _real(name: str, value: Any) -> float:
    number = real(value)
    if number is None or not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    given = flag(value)
    if given is None:
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return given


def _lerp(start: Any, end: Any, weight: float) -> Any:
    """``start + weight * (end - start)``, rounded as ``torch.lerp`` rounds it."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay,
    exactly as ``torch.optim.SGD``.

    With ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p
        b = g (first step), else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b      (when momentum != 0)
        p = p - lr * g

    ``param_groups`` gives groups of parameters options of their own (see
    :class:`~xpnet.optim.Optimizer`).
    """

    slots = ("momentum_buffer",)

    def __init__(
        self,
        model: Module,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        param_groups: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            model,
            lr,
            param_groups,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )

    def _option_names(self) -> tuple[str, ...]:
        return ("momentum", "dampening", "weight_decay", "nesterov", "maximize")

    def _check(self, options: dict[str, Any], where: str) -> dict[str, Any]:
        checked = super()._check(options, where)
        checked["momentum"] = non_negative(f"{where}momentum", checked["momentum"])
        checked["dampening"] = _real(f"{where}dampening", checked["dampening"])
        checked["weight_decay"] = non_negative(f"{where}weight_decay", checked["weight_decay"])
        checked["nesterov"] = _flag(f"{where}nesterov", checked["nesterov"])
        checked["maximize"] = _flag(f"{where}maximize", checked["maximize"])
        if checked["nesterov"] and (checked["momentum"] <= 0 or checked["dampening"] != 0):
            raise ValueError(
                f"{where}nesterov: needs momentum > 0 and dampening == 0 (as in torch)"
            )
        return checked

    def _update(
        self,
        param: Any,
        grad: Any,
        state: dict[str, Any],
        scalars: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> Any:
        if options["maximize"]:
            grad = -grad
        if options["weight_decay"]:
            grad = grad + options["weight_decay"] * param
        momentum = options["momentum"]
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = grad
            else:
                buffer = momentum * buffer + (1.0 - options["dampening"]) * grad
            state["momentum_buffer"] = buffer
            grad = grad + momentum * buffer if options["nesterov"] else buffer
        return param - scalars["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba), exactly as ``torch.optim.Adam``: bias correction, L2
    ``weight_decay`` added to the gradient, optional AMSGrad.

    Each parameter counts its own steps (state ``"step"``), so a parameter that joins
    late starts its bias correction at 1, as in torch.

    The bias corrections are computed on the host in double precision, as torch does
    when it is not capturing a CUDA graph, and enter the update as scalars.

    ``param_groups`` gives groups of parameters options of their own (see
    :class:`~xpnet.optim.Optimizer`); a group may give ``betas`` as torch does.
    """

    slots = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    non_negative_slots = ("exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        model: Module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        param_groups: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            model,
            lr,
            param_groups,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )

    def _option_names(self) -> tuple[str, ...]:
        return ("beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize")

    def _check(self, options: dict[str, Any], where: str) -> dict[str, Any]:
        options = dict(options)
        if "betas" in options:  # torch's form: one pair
            betas = options.pop("betas")
            if not isinstance(betas, tuple | list) or len(betas) != 2:
                raise ValueError(f"{where}betas: expected a pair of floats, got {betas!r}")
            options["beta1"], options["beta2"] = betas
        checked = super()._check(options, where)
        checked["beta1"] = _probability(f"{where}betas[0]", checked["beta1"])
        checked["beta2"] = _probability(f"{where}betas[1]", checked["beta2"])
        checked["eps"] = non_negative(f"{where}eps", checked["eps"])
        checked["weight_decay"] = non_negative(f"{where}weight_decay", checked["weight_decay"])
        checked["amsgrad"] = _flag(f"{where}amsgrad", checked["amsgrad"])
        checked["maximize"] = _flag(f"{where}maximize", checked["maximize"])
        return checked

    def _decay(
        self, param: Any, grad: Any, scalars: Mapping[str, Any], options: Mapping[str, Any]
    ) -> tuple[Any, Any]:
        """L2 regularisation folded into the gradient (Adam); AdamW overrides this."""
        if options["weight_decay"]:
            grad = grad + options["weight_decay"] * param
        return param, grad

    def _scalars(self, step: int, options: Mapping[str, Any]) -> dict[str, float]:
        # On the host in double precision, as torch computes them (capturable=False).
        lr = options["lr"]
        return {
            "lr": lr,
            "step_size": lr / (1.0 - options["beta1"] ** step),
            "bias_correction2_sqrt": math.sqrt(1.0 - options["beta2"] ** step),
        }

    def _initial_state(self, param: Any, options: Mapping[str, Any]) -> dict[str, Any]:
        # Zero moments are what the first step starts from (and max(0, v) = v for AMSGrad).
        xp = array_api_compat.array_namespace(param)
        slots = self.slots[1:] if options["amsgrad"] else self.slots[1:3]
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
        beta1, beta2 = options["beta1"], options["beta2"]
        if options["maximize"]:
            grad = -grad
        param, grad = self._decay(param, grad, scalars, options)
        exp_avg = state.get("exp_avg")
        exp_avg_sq = state.get("exp_avg_sq")
        if exp_avg is None or exp_avg_sq is None:
            exp_avg, exp_avg_sq = xp.zeros_like(param), xp.zeros_like(param)
        exp_avg = _lerp(exp_avg, grad, 1.0 - beta1)
        exp_avg_sq = beta2 * exp_avg_sq + (1.0 - beta2) * (grad * grad)
        state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
        second = exp_avg_sq
        if options["amsgrad"]:
            previous = state.get("max_exp_avg_sq")
            second = exp_avg_sq if previous is None else xp.maximum(previous, exp_avg_sq)
            state["max_exp_avg_sq"] = second
        denominator = xp.sqrt(second) / scalars["bias_correction2_sqrt"] + options["eps"]
        return param - scalars["step_size"] * (exp_avg / denominator)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), exactly as
    ``torch.optim.AdamW``: ``p = p * (1 - lr * weight_decay)`` before the Adam step."""

    def __init__(
        self,
        model: Module,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        param_groups: Iterable[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            model,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            param_groups=param_groups,
        )

    def _decay(
        self, param: Any, grad: Any, scalars: Mapping[str, Any], options: Mapping[str, Any]
    ) -> tuple[Any, Any]:
        if options["weight_decay"]:
            param = param * scalars["decay"]
        return param, grad

    def _scalars(self, step: int, options: Mapping[str, Any]) -> dict[str, float]:
        return {
            **super()._scalars(step, options),
            "decay": 1.0 - options["lr"] * options["weight_decay"],
        }
