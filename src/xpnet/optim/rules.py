"""The update rules: SGD, Adam and AdamW, exactly as ``torch.optim`` computes them.

Each rule works on a group's flat buffers (see :mod:`.optimizer`), so one step costs the
same few array operations for any number of parameters (Adam: 14 launches on a GPU, plus
one to gather the gradients).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import array_api_compat

from ..nn.module import Module
from .optimizer import Optimizer, non_negative

__all__ = ["SGD", "Adam", "AdamW"]


def _probability(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1), got {value!r}")
    return float(value)


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
    ) -> None:
        super().__init__(model, lr)
        self.momentum = non_negative("momentum", momentum)
        self.dampening = float(dampening)
        self.weight_decay = non_negative("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        self.maximize = bool(maximize)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov: needs momentum > 0 and dampening == 0 (as in torch)")

    def hyperparameters(self) -> dict[str, float | bool]:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "dampening": self.dampening,
            "weight_decay": self.weight_decay,
            "nesterov": self.nesterov,
            "maximize": self.maximize,
        }

    def _update(
        self, param: Any, grad: Any, state: dict[str, Any], scalars: Mapping[str, Any]
    ) -> Any:
        if self.maximize:
            grad = -grad
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if self.momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = grad
            else:
                buffer = self.momentum * buffer + (1.0 - self.dampening) * grad
            state["momentum_buffer"] = buffer
            grad = grad + self.momentum * buffer if self.nesterov else buffer
        return param - scalars["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba), exactly as ``torch.optim.Adam``: bias correction, L2
    ``weight_decay`` added to the gradient, optional AMSGrad.

    Each parameter counts its own steps (state ``"step"``), so a parameter that joins
    late starts its bias correction at 1, as in torch.

    The bias corrections are computed on the host in double precision, as torch does
    when it is not capturing a CUDA graph, and enter the update as scalars.
    """

    slots = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")

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
    ) -> None:
        super().__init__(model, lr)
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"betas: expected a pair of floats, got {betas!r}")
        self.beta1 = _probability("betas[0]", betas[0])
        self.beta2 = _probability("betas[1]", betas[1])
        self.eps = non_negative("eps", eps)
        self.weight_decay = non_negative("weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)
        self.maximize = bool(maximize)

    def hyperparameters(self) -> dict[str, float | bool]:
        return {
            "lr": self.lr,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
            "maximize": self.maximize,
        }

    def _decay(self, param: Any, grad: Any, scalars: Mapping[str, Any]) -> tuple[Any, Any]:
        """L2 regularisation folded into the gradient (Adam); AdamW overrides this."""
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        return param, grad

    def _scalars(self, step: int) -> dict[str, float]:
        # On the host in double precision, as torch computes them (capturable=False).
        return {
            "lr": self.lr,
            "step_size": self.lr / (1.0 - self.beta1**step),
            "bias_correction2_sqrt": math.sqrt(1.0 - self.beta2**step),
        }

    def initial_state(self, param: Any) -> dict[str, Any]:
        # Zero moments are what the first step starts from (and max(0, v) = v for AMSGrad).
        xp = array_api_compat.array_namespace(param)
        slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if self.amsgrad else self.slots[1:3]
        return {slot: xp.zeros_like(param) for slot in slots}

    def _update(
        self, param: Any, grad: Any, state: dict[str, Any], scalars: Mapping[str, Any]
    ) -> Any:
        xp = array_api_compat.array_namespace(param)
        if self.maximize:
            grad = -grad
        param, grad = self._decay(param, grad, scalars)
        exp_avg = state.get("exp_avg")
        exp_avg_sq = state.get("exp_avg_sq")
        if exp_avg is None or exp_avg_sq is None:
            exp_avg, exp_avg_sq = xp.zeros_like(param), xp.zeros_like(param)
        exp_avg = _lerp(exp_avg, grad, 1.0 - self.beta1)
        exp_avg_sq = self.beta2 * exp_avg_sq + (1.0 - self.beta2) * (grad * grad)
        state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
        second = exp_avg_sq
        if self.amsgrad:
            previous = state.get("max_exp_avg_sq")
            second = exp_avg_sq if previous is None else xp.maximum(previous, exp_avg_sq)
            state["max_exp_avg_sq"] = second
        denominator = xp.sqrt(second) / scalars["bias_correction2_sqrt"] + self.eps
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
    ) -> None:
        super().__init__(model, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)

    def _decay(self, param: Any, grad: Any, scalars: Mapping[str, Any]) -> tuple[Any, Any]:
        if self.weight_decay:
            param = param * scalars["decay"]
        return param, grad

    def _scalars(self, step: int) -> dict[str, float]:
        return {**super()._scalars(step), "decay": 1.0 - self.lr * self.weight_decay}
