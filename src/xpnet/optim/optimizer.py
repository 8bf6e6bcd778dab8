"""The optimizer base class: parameters updated together in flat buffers.

Updating parameter by parameter costs one array operation per term of the rule per tensor
(Adam: 13 x 10 launches for LeNet-5 on a GPU). xpnet updates every parameter of a *group*
at once instead, as torch's ``foreach`` and fused optimizers do: the group's parameters,
gradients and state are each one flat buffer, so a step costs a fixed number of operations
whatever the number of tensors. The model's parameters are views of the flat parameter
buffer, so the next step reuses it without copying.

A group is the parameters that share a namespace, device, dtype, step count and set of
state arrays: normally one group for a whole model. Parameters that were frozen for some
steps (absent from ``grads``) have fewer steps and form their own group until they catch up
in the checkpoint's sense (torch counts steps per parameter too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import array_api_compat

from .. import backends
from ..nn.module import Module

__all__ = ["Optimizer", "ParamGroup", "flatten"]


def non_negative(name: str, value: float) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` if it is negative."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    return float(value)


def _on_host_then_like(value: Any, param: Any) -> Any:
    """``value`` as an array of ``param``'s namespace, device and dtype."""
    xp = array_api_compat.array_namespace(param)
    host = backends.to_numpy(value)
    if not host.flags.writeable:  # e.g. from JAX; torch warns when wrapping those
        host = host.copy()
    return xp.asarray(host, dtype=param.dtype, device=array_api_compat.device(param))


def flatten(xp: Any, arrays: list[Any]) -> Any:
    """One 1-D buffer holding ``arrays`` one after another."""
    flat = [xp.reshape(a, (-1,)) for a in arrays]
    return flat[0] if len(flat) == 1 else xp.concat(flat)


@dataclass
class ParamGroup:
    """Parameters updated together: their names, shapes and places in the flat buffers.

    Attributes
    ----------
    names : tuple of str
        The parameters, in the model's order.
    shapes : tuple of tuple of int
        Their shapes.
    bounds : tuple of int
        ``bounds[i]:bounds[i + 1]`` is parameter ``i``'s range in the flat buffers.
    step : int
        Updates each of these parameters has had.
    state : dict of str to array
        The optimizer's flat state buffers (e.g. ``exp_avg``), by slot name.
    flat : array or None
        The flat parameter buffer whose views the model holds (``None`` when unknown).
    views : tuple
        The arrays the group last set on the model (to recognise them next step).
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    bounds: tuple[int, ...]
    step: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    flat: Any = None
    views: tuple[Any, ...] = ()

    @classmethod
    def of(cls, names: list[str], params: Mapping[str, Any], step: int) -> ParamGroup:
        """A group of ``names`` (shapes taken from ``params``) with no state yet."""
        shapes = tuple(tuple(int(n) for n in params[name].shape) for name in names)
        bounds = [0]
        for shape in shapes:
            bounds.append(bounds[-1] + math.prod(shape))
        return cls(tuple(names), shapes, tuple(bounds), step)

    def split(self, xp: Any, flat: Any) -> list[Any]:
        """``flat`` cut back into one array per parameter (views where the library has
        them)."""
        if len(self.names) == 1:
            return [xp.reshape(flat, self.shapes[0])]
        return [
            xp.reshape(flat[self.bounds[i] : self.bounds[i + 1]], shape)
            for i, shape in enumerate(self.shapes)
        ]

    def flat_params(self, params: Mapping[str, Any]) -> Any:
        """The flat parameter buffer: the one the model's parameters view, when they are
        still the arrays this group set, else a new one."""
        current = [params[name] for name in self.names]
        if self.flat is not None and all(a is b for a, b in zip(current, self.views, strict=True)):
            return self.flat
        xp = array_api_compat.array_namespace(current[0])
        return flatten(xp, current)


class Optimizer:
    """Base class: holds the model, the learning rate and the parameter groups.

    Subclasses list their per-parameter state arrays in :attr:`slots` and implement
    :meth:`_update` (the rule, on flat buffers) and :meth:`_scalars` (the numbers of one
    update that change from step to step, computed on the host).
    """

    #: Names of the per-parameter state arrays, in checkpoint order.
    slots: tuple[str, ...] = ()

    def __init__(self, model: Module, lr: float) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"model: expected an xpnet Module, got {type(model).__name__}")
        self.model = model
        self.lr = non_negative("lr", lr)
        #: Number of :meth:`step` calls.
        self.step_count = 0
        self._groups: list[ParamGroup] = []
        # Per-parameter (step, state) loaded from a state_dict or left by a dissolved group.
        self._loose: dict[str, tuple[int, dict[str, Any]]] = {}

    # -- the rule ---------------------------------------------------------------------------

    def _scalars(self, step: int) -> dict[str, float]:
        """The numbers of the update of a group at its ``step``-th update that change from
        step to step (learning rate, bias corrections): Python floats here, 0-d arrays in a
        compiled step."""
        return {"lr": self.lr}

    def _update(
        self, param: Any, grad: Any, state: dict[str, Any], scalars: Mapping[str, Any]
    ) -> Any:
        """The new flat parameters; writes the new state arrays into ``state`` (arrays are
        replaced, never modified)."""
        raise NotImplementedError

    def update(
        self, param: Any, grad: Any, state: dict[str, Any], scalars: Mapping[str, Any]
    ) -> Any:
        """One update of a group's flat buffers: the new parameters; the new state arrays
        are written into ``state``. Pure (no host reads, no in-place writes), so compiled
        steps (:func:`xpnet.compile_step`) trace it."""
        return self._update(param, grad, state, scalars)

    def initial_state(self, param: Any) -> dict[str, Any]:
        """State arrays for a group's flat parameters ``param`` that update exactly as no
        state does, for compilers that need the state's layout fixed from the first step
        (none where the rule's first step differs, as SGD's momentum does)."""
        return {}

    def scalars(self, step: int) -> dict[str, float]:
        """The numbers of a group's ``step``-th update that change between steps."""
        return self._scalars(step)

    # -- groups -----------------------------------------------------------------------------

    def _param_states(self, groups: list[ParamGroup]) -> dict[str, tuple[int, dict[str, Any]]]:
        """Each parameter's step count and state arrays (views into its group's buffers)."""
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        for group in groups:
            pieces: dict[str, list[Any]] = {}
            for slot, buffer in group.state.items():
                pieces[slot] = group.split(array_api_compat.array_namespace(buffer), buffer)
            for i, name in enumerate(group.names):
                found[name] = (group.step, {slot: parts[i] for slot, parts in pieces.items()})
        return found

    def _all_states(self) -> dict[str, tuple[int, dict[str, Any]]]:
        return {**self._loose, **self._param_states(self._groups)}

    def groups_for(self, names: list[str]) -> list[ParamGroup]:
        """The groups that update ``names`` together, formed anew where the parameters'
        step counts, state slots or arrays' kinds changed."""
        params = dict(self.model.named_parameters())
        kinds = {
            name: (group.step, tuple(sorted(group.state)))
            for group in self._groups
            for name in group.names
        }
        keys: dict[tuple[Any, ...], list[str]] = {}
        for name in names:
            param = params[name]
            if name in kinds:
                step, slots = kinds[name]
            else:
                step, state = self._loose.get(name, (0, {}))
                slots = tuple(sorted(state))
            key = (
                array_api_compat.array_namespace(param),
                str(array_api_compat.device(param)),
                str(param.dtype),
                step,
                slots,
            )
            keys.setdefault(key, []).append(name)
        wanted = [(tuple(members), key[3]) for key, members in keys.items()]
        kept = {g.names: g for g in self._groups if g.names in {m for m, _ in wanted}}
        dissolved = [g for g in self._groups if g.names not in kept]
        if dissolved:  # their parameters' state goes loose until regrouped
            self._loose.update(self._param_states(dissolved))
        self._groups = list(kept.values())
        result = []
        for members, step in wanted:
            group = kept.get(members)
            if group is None:
                group = ParamGroup.of(list(members), params, step)
                pieces = [self._loose.pop(name, (0, {}))[1] for name in members]
                for slot, first in pieces[0].items():
                    xp = array_api_compat.array_namespace(first)
                    group.state[slot] = flatten(xp, [piece[slot] for piece in pieces])
                self._groups.append(group)
            result.append(group)
        return result

    def follow(self, group: ParamGroup, like: Any) -> None:
        """After ``model.to(...)``, bring the group's state to where its parameters (of
        which ``like`` is one) live."""
        flat_param = like
        for slot, value in group.state.items():
            if (
                array_api_compat.array_namespace(value)
                is not array_api_compat.array_namespace(flat_param)
                or array_api_compat.device(value) != array_api_compat.device(flat_param)
                or value.dtype != flat_param.dtype
            ):
                group.state[slot] = _on_host_then_like(value, flat_param)

    # -- stepping ---------------------------------------------------------------------------

    def _check_grads(self, grads: Mapping[str, Any]) -> dict[str, Any]:
        params = dict(self.model.named_parameters())
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
            if tuple(grad.shape) != tuple(param.shape):
                raise ValueError(
                    f"grads: {name!r} has shape {tuple(grad.shape)}, parameter has "
                    f"{tuple(param.shape)}"
                )
        return params

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
        params = self._check_grads(grads)
        self.step_count += 1
        names = [name for name in params if name in grads]
        for group in self.groups_for(names):
            flat_param = group.flat_params(params)
            xp = array_api_compat.array_namespace(flat_param)
            self.follow(group, flat_param)
            flat_grad = flatten(xp, [grads[name] for name in group.names])
            group.step += 1
            new = self.update(flat_param, flat_grad, group.state, self.scalars(group.step))
            self.assign(group, xp, new)

    def assign(self, group: ParamGroup, xp: Any, flat: Any) -> None:
        """Set the group's parameters on the model to views of ``flat``."""
        views = group.split(xp, flat)
        for name, view in zip(group.names, views, strict=True):
            self.model.set_parameter(name, view)
        group.flat, group.views = flat, tuple(views)

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> dict[str, dict[str, Any]]:
        """Per-parameter state arrays (views into the flat buffers), by parameter name, with
        the parameter's step count as ``"step"`` where the rule keeps one."""
        found = {}
        for name, (step, slots) in self._all_states().items():
            if slots:
                found[name] = {**slots, "step": step} if "step" in self.slots else dict(slots)
        return found

    def hyperparameters(self) -> dict[str, float | bool]:
        """The settings that define the update rule (saved in checkpoints)."""
        return {"lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        """Flat mapping: ``"step"``, the hyperparameters, ``"state.<param>.<slot>"`` entries.

        Values are Python scalars or arrays (on the parameters' backend), which is what
        :func:`xpnet.train.save_checkpoint` stores.
        """
        flat: dict[str, Any] = {"step": self.step_count, **self.hyperparameters()}
        states = self._all_states()
        for name, _ in self.model.named_parameters():
            step, state = states.get(name, (0, {}))
            if "step" in self.slots and state:
                flat[f"state.{name}.step"] = step
            for slot in self.slots:
                if slot in state:
                    flat[f"state.{name}.{slot}"] = state[slot]
        return flat

    def _check_complete(
        self, flat: Mapping[str, Any], loaded: Mapping[str, tuple[int, dict[str, Any]]]
    ) -> None:
        """A state that has taken steps holds every slot of every parameter: filling a
        missing one with zeros would resume a different run, silently."""
        step_count = flat.get("step", 0)
        if not loaded and not (isinstance(step_count, int | float) and step_count > 0):
            return  # a fresh optimizer's state
        gaps = []
        for name, param in self.model.named_parameters():
            needed = set(self.initial_state(param))
            if "step" in self.slots and needed:
                needed.add("step")
            _, state = loaded.get(name, (0, {}))
            have = set(state) | ({"step"} if f"state.{name}.step" in flat else set())
            missing = sorted(needed - have)
            if missing:
                gaps.append(f"{name} ({', '.join(missing)})")
        if gaps:
            raise ValueError(
                f"optimizer state is incomplete, missing: {'; '.join(gaps)}; resuming would "
                "zero-fill them and not continue the run that was saved"
            )

    def load_state_dict(self, flat: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays may come from the host).

        Raises
        ------
        KeyError
            If the state names a parameter the model lacks or an unknown slot.
        ValueError
            If a state array's shape differs from its parameter's, or a state that has
            taken steps lacks a slot of some parameter (it would be zero-filled).
        """
        params = dict(self.model.named_parameters())
        loaded: dict[str, tuple[int, dict[str, Any]]] = {}
        for key, value in flat.items():
            if not key.startswith("state."):
                continue
            name, _, slot = key[len("state.") :].rpartition(".")
            if name not in params:
                raise KeyError(f"optimizer state names {name!r}, which the model does not have")
            if slot not in self.slots:
                raise KeyError(f"optimizer state slot {slot!r} is not one of {self.slots}")
            param = params[name]
            step, state = loaded.get(name, (0, {}))
            if slot == "step":
                loaded[name] = (int(backends.to_numpy(value)), state)
                continue
            shape = tuple(backends.to_numpy(value).shape)
            if shape != tuple(param.shape):
                raise ValueError(
                    f"optimizer state {key!r} has shape {shape}, parameter has {tuple(param.shape)}"
                )
            state[slot] = _on_host_then_like(value, param)
            loaded[name] = (step, state)
        self._check_complete(flat, loaded)
        self._groups, self._loose = [], loaded
        self.step_count = int(flat.get("step", 0))
        for key, current in self.hyperparameters().items():
            if key in flat:
                setattr(self, key, type(current)(backends.to_numpy(flat[key])))
