"""Optimizers and learning-rate schedules with ``torch.optim``'s update rules.

An optimizer is built from a model and takes the gradients that
:func:`xpnet.value_and_grad` returns::

    opt = optim.Adam(model, lr=1e-3)
    loss, grads = xpnet.value_and_grad(model, F.cross_entropy, x, y)
    opt.step(grads)

``step`` writes new arrays into the model (arrays need not be mutable). The optimizer's
state (step count, moment buffers) round-trips through :meth:`Optimizer.state_dict`, so a
checkpoint resumes exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import array_api_compat

from .. import backends
from ..nn.module import Module

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "Optimizer", "StepLR"]


def _non_negative(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    return float(value)


def _probability(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1), got {value!r}")
    return float(value)


def _on_host_then_like(value: Any, param: Any) -> Any:
    """``value`` as an array of ``param``'s namespace, device and dtype."""
    xp = array_api_compat.array_namespace(param)
    host = backends.to_numpy(value)
    if not host.flags.writeable:  # e.g. from JAX; torch warns when wrapping those
        host = host.copy()
    return xp.asarray(host, dtype=param.dtype, device=array_api_compat.device(param))


def _lerp(start: Any, end: Any, weight: float) -> Any:
    """``start + weight * (end - start)``, rounded as ``torch.lerp`` rounds it."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


class Optimizer:
    """Base class: holds the model, the learning rate and per-parameter state.

    Subclasses list their per-parameter state arrays in :attr:`slots` and implement
    :meth:`_update`, which returns the new parameter and writes the new state arrays into
    ``state`` (arrays are replaced, never modified).
    """

    #: Names of the per-parameter state arrays, in checkpoint order.
    slots: tuple[str, ...] = ()

    def __init__(self, model: Module, lr: float) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"model: expected an xpnet Module, got {type(model).__name__}")
        self.model = model
        self.lr = _non_negative("lr", lr)
        #: Number of :meth:`step` calls.
        self.step_count = 0
        self.state: dict[str, dict[str, Any]] = {}

    def step(self, grads: Mapping[str, Any]) -> None:
        """Update every parameter that has a gradient in ``grads``.

        Parameters missing from ``grads`` (frozen ones, say) are left alone, and their
        state does not advance, as in torch when a parameter's ``.grad`` is ``None``.

        Raises
        ------
        KeyError
            If ``grads`` names something that is not a trainable parameter.
        ValueError
            If a gradient's shape differs from its parameter's.
        """
        params = self.model.named_parameters()
        unknown = [k for k in grads if k not in params]
        if unknown:
            raise KeyError(
                f"grads: {unknown} are not trainable parameters of the model "
                f"(it has {list(params)})"
            )
        for name, grad in grads.items():
            param = params[name]
            if not array_api_compat.is_array_api_obj(grad) or (
                array_api_compat.array_namespace(grad)
                is not array_api_compat.array_namespace(param)
            ):
                raise TypeError(
                    f"grads: {name!r} must be an array of the parameter's library "
                    f"({array_api_compat.array_namespace(param).__name__}), got "
                    f"{type(grad).__name__}"
                )
            if tuple(grad.shape) != tuple(params[name].shape):
                raise ValueError(
                    f"grads: {name!r} has shape {tuple(grad.shape)}, parameter has "
                    f"{tuple(params[name].shape)}"
                )
        self.step_count += 1
        for name, grad in grads.items():
            param = params[name]
            state = self.state.setdefault(name, {})
            for slot, value in state.items():
                # After model.to(...), bring the state to where the parameter now lives.
                if array_api_compat.is_array_api_obj(value) and (
                    array_api_compat.array_namespace(value)
                    is not array_api_compat.array_namespace(param)
                    or array_api_compat.device(value) != array_api_compat.device(param)
                    or value.dtype != param.dtype
                ):
                    state[slot] = _on_host_then_like(value, param)
            self.model.set_parameter(name, self._update(param, grad, state))

    def _update(self, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, float | bool]:
        """The settings that define the update rule (saved in checkpoints)."""
        return {"lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        """Flat mapping: ``"step"``, the hyperparameters, ``"state.<param>.<slot>"`` entries.

        Values are Python scalars or arrays (on the parameters' backend), which is what
        :func:`xpnet.train.save_checkpoint` stores.
        """
        flat: dict[str, Any] = {"step": self.step_count, **self.hyperparameters()}
        for name, state in self.state.items():
            for slot, value in state.items():
                flat[f"state.{name}.{slot}"] = value
        return flat

    def load_state_dict(self, flat: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays may come from the host).

        Raises
        ------
        KeyError
            If the state names a parameter the model lacks or an unknown slot.
        ValueError
            If a state array's shape differs from its parameter's.
        """
        params = self.model.named_parameters()
        state: dict[str, dict[str, Any]] = {}
        for key, value in flat.items():
            if not key.startswith("state."):
                continue
            name, _, slot = key[len("state.") :].rpartition(".")
            if name not in params:
                raise KeyError(f"optimizer state names {name!r}, which the model does not have")
            if slot not in self.slots:
                raise KeyError(f"optimizer state slot {slot!r} is not one of {self.slots}")
            param = params[name]
            if slot == "step":
                state.setdefault(name, {})[slot] = int(backends.to_numpy(value))
                continue
            shape = tuple(backends.to_numpy(value).shape)
            if shape != tuple(param.shape):
                raise ValueError(
                    f"optimizer state {key!r} has shape {shape}, parameter has {tuple(param.shape)}"
                )
            state.setdefault(name, {})[slot] = _on_host_then_like(value, param)
        self.state = state
        self.step_count = int(flat.get("step", 0))
        for key, current in self.hyperparameters().items():
            if key in flat:
                setattr(self, key, type(current)(backends.to_numpy(flat[key])))


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
        self.momentum = _non_negative("momentum", momentum)
        self.dampening = float(dampening)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
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

    def _update(self, param: Any, grad: Any, state: dict[str, Any]) -> Any:
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
        return param - self.lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba), exactly as ``torch.optim.Adam``: bias correction, L2
    ``weight_decay`` added to the gradient, optional AMSGrad.

    Each parameter counts its own steps (state ``"step"``), so a parameter that joins
    late starts its bias correction at 1, as in torch.
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
        self.eps = _non_negative("eps", eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
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

    def _decay(self, param: Any, grad: Any) -> tuple[Any, Any]:
        """L2 regularisation folded into the gradient (Adam); AdamW overrides this."""
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        return param, grad

    def _update(self, param: Any, grad: Any, state: dict[str, Any]) -> Any:
        xp = array_api_compat.array_namespace(param)
        if self.maximize:
            grad = -grad
        step = int(state.get("step", 0)) + 1
        param, grad = self._decay(param, grad)
        exp_avg = state.get("exp_avg")
        exp_avg_sq = state.get("exp_avg_sq")
        if exp_avg is None or exp_avg_sq is None:
            exp_avg, exp_avg_sq = xp.zeros_like(param), xp.zeros_like(param)
        exp_avg = _lerp(exp_avg, grad, 1.0 - self.beta1)
        exp_avg_sq = self.beta2 * exp_avg_sq + (1.0 - self.beta2) * (grad * grad)
        state["step"], state["exp_avg"], state["exp_avg_sq"] = step, exp_avg, exp_avg_sq
        second = exp_avg_sq
        if self.amsgrad:
            previous = state.get("max_exp_avg_sq")
            second = exp_avg_sq if previous is None else xp.maximum(previous, exp_avg_sq)
            state["max_exp_avg_sq"] = second
        step_size = self.lr / (1.0 - self.beta1**step)
        denominator = xp.sqrt(second) / math.sqrt(1.0 - self.beta2**step) + self.eps
        return param - step_size * (exp_avg / denominator)


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

    def _decay(self, param: Any, grad: Any) -> tuple[Any, Any]:
        if self.weight_decay:
            param = param * (1.0 - self.lr * self.weight_decay)
        return param, grad


class LRScheduler:
    """Base class: sets ``optimizer.lr`` on every :meth:`step` (one step per epoch).

    Like torch's schedulers, each step derives the new rate from the current one
    (the "chainable" form), so the rates match ``torch.optim.lr_scheduler`` to the bit.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer: expected an xpnet Optimizer, got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def _next_lr(self, epoch: int, lr: float) -> float:
        """The rate for ``epoch`` given the rate ``lr`` of the epoch before."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the optimizer's learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr(self.last_epoch, self.optimizer.lr)

    def get_last_lr(self) -> list[float]:
        """The learning rate set by the last :meth:`step` (a list, as in torch)."""
        return [self.optimizer.lr]

    def state_dict(self) -> dict[str, float]:
        """What a checkpoint needs to resume the schedule (JSON-serialisable numbers)."""
        return {
            "base_lr": self.base_lr,
            "last_epoch": self.last_epoch,
            "last_lr": self.optimizer.lr,
        }

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        """Restore the schedule and the optimizer's current learning rate."""
        self.base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])
        if "last_lr" in state:
            self.optimizer.lr = float(state["last_lr"])
        else:  # replay the schedule
            lr = self.base_lr
            for epoch in range(1, self.last_epoch + 1):
                lr = self._next_lr(epoch, lr)
            self.optimizer.lr = lr


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs
    (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if isinstance(step_size, bool) or not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size: expected a positive int, got {step_size!r}")
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, float(gamma)

    def _next_lr(self, epoch: int, lr: float) -> float:
        return lr * self.gamma if epoch % self.step_size == 0 else lr


class CosineAnnealingLR(LRScheduler):
    """Cosine decay from the initial rate to ``eta_min`` over ``T_max`` epochs
    (``torch.optim.lr_scheduler.CosineAnnealingLR``; past ``T_max`` it rises again, as
    torch's does)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        if isinstance(T_max, bool) or not isinstance(T_max, int) or T_max < 1:
            raise ValueError(f"T_max: expected a positive int, got {T_max!r}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, float(eta_min)

    def _next_lr(self, epoch: int, lr: float) -> float:
        t_max, eta_min = self.T_max, self.eta_min
        if (epoch - 1 - t_max) % (2 * t_max) == 0:
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return (1 + math.cos(math.pi * epoch / t_max)) / (
            1 + math.cos(math.pi * (epoch - 1) / t_max)
        ) * (lr - eta_min) + eta_min
