"""The optimizer base class: parameters updated together in flat buffers.

Updating parameter by parameter costs one array operation per term of the rule per tensor
(Adam: 13 x 10 launches for LeNet-5 on a GPU). xpnet updates every parameter of a *group*
at once instead, as torch's ``foreach`` and fused optimizers do: the group's parameters,
gradients and state are each one flat buffer, so a step costs a fixed number of operations
whatever the number of tensors. The model's parameters are views of the flat parameter
buffer, so the next step reuses it without copying.

Two kinds of group, as in torch: the *parameter groups* a user asks for
(:attr:`Optimizer.param_groups`, each with its own options: a lower learning rate for a
backbone, no weight decay on biases), and inside each, the *flat groups* updated together:
the parameters that share a namespace, device, dtype, step count and set of state arrays,
normally one per parameter group. Parameters that were frozen for some steps (absent from
``grads``) have fewer steps and form their own flat group until they catch up in the
checkpoint's sense (torch counts steps per parameter too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import array_api_compat
import numpy as np

from .. import backends
from .._numbers import whole
from ..nn.module import Module
from ._groups import (
    ParamGroup,
    flatten,
    member_names,
    non_negative,
    on_host_then_like,
    saved_option,
)

__all__ = ["Optimizer", "ParamGroup", "flatten"]


#: The most steps a state may count (torch keeps them in an int64 or a float).
MAX_STEPS = 2**63 - 1


class Optimizer:
    """Base class: holds the model, the parameter groups and their flat state.

    Subclasses list their per-parameter state arrays in :attr:`slots`, pass their default
    options to ``__init__`` and implement :meth:`_check` (validating one group's options),
    :meth:`_update` (the rule, on flat buffers) and :meth:`_scalars` (the numbers of one
    update that change from step to step, computed on the host).

    Parameters
    ----------
    model : Module
        The model whose parameters are updated.
    lr : float
        The default learning rate.
    param_groups : list of dict, optional
        torch's parameter groups: each a dict with ``"params"`` (a sub-module of
        ``model``, parameter names, arrays from ``model.parameters()``, ``(name, array)``
        pairs from ``model.named_parameters()``, or an iterable of these) and any options
        of the optimizer that differ from its defaults. Only the parameters listed are
        updated (as in torch); each may be listed once. Default: one group holding every
        parameter.
    **defaults
        The rule's other options.

    Attributes
    ----------
    param_groups : list of dict
        One dict per group: ``"params"`` (the qualified parameter names) and every option.
        Change an option there (``group["lr"] = 0.01``) to change it from the next step;
        ``optimizer.lr = value`` (or any other option) sets it in every group, and
        ``optimizer.lr`` reads the first group's.
    defaults : dict
        The options a group gets unless it says otherwise.
    """

    #: Names of the per-parameter state arrays, in checkpoint order.
    slots: tuple[str, ...] = ()
    #: Slots that are never negative (second moments): a negative entry is damage.
    non_negative_slots: tuple[str, ...] = ()

    model: Module
    defaults: dict[str, Any]
    param_groups: list[dict[str, Any]]

    def __init__(
        self,
        model: Module,
        lr: float,
        param_groups: Iterable[Mapping[str, Any]] | None = None,
        **defaults: Any,
    ) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"model: expected an xpnet Module, got {type(model).__name__}")
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "defaults", self._check({"lr": lr, **defaults}, ""))
        object.__setattr__(self, "param_groups", self._build_groups(param_groups))
        #: Number of :meth:`step` calls.
        self.step_count = 0
        self._groups: list[ParamGroup] = []
        # Per-parameter (step, state) loaded from a state_dict or left by a dissolved group.
        self._loose: dict[str, tuple[int, dict[str, Any]]] = {}

    def _build_groups(
        self, param_groups: Iterable[Mapping[str, Any]] | None
    ) -> list[dict[str, Any]]:
        if param_groups is None:
            return [{"params": [n for n, _ in self.model.named_parameters()], **self.defaults}]
        if isinstance(param_groups, Mapping | str):
            raise TypeError("param_groups: expected a list of dicts, one per group")
        groups: list[dict[str, Any]] = []
        owner: dict[str, int] = {}
        for index, given in enumerate(param_groups):
            where = f"param_groups[{index}]"
            if not isinstance(given, Mapping) or "params" not in given:
                raise TypeError(f"{where}: expected a dict with a 'params' entry")
            names = member_names(self.model, given["params"], f"{where}['params']")
            for name in names:
                if name in owner:
                    raise ValueError(
                        f"{where}: parameter {name!r} is already in param_groups[{owner[name]}]; "
                        "a parameter may be in one group only"
                    )
                owner[name] = index
            options = {k: v for k, v in given.items() if k != "params"}
            checked = self._check({**self.defaults, **options}, f"{where}: ")
            groups.append({"params": names, **checked})
        if not groups:
            raise ValueError("param_groups: expected at least one group")
        return groups

    # -- options ----------------------------------------------------------------------------

    def _check(self, options: dict[str, Any], where: str) -> dict[str, Any]:
        """One group's options, validated (``where`` prefixes the errors, e.g.
        ``"param_groups[1]: "``): the base checks the learning rate; subclasses check the
        rest and normalise names."""
        unknown = set(options) - {"lr", *self._option_names()}
        if unknown:
            raise ValueError(
                f"{where or 'options: '}unknown {sorted(unknown)} for {type(self).__name__} "
                f"(it takes {', '.join(['lr', *self._option_names()])})"
            )
        checked = dict(options)
        checked["lr"] = non_negative(f"{where}lr", options["lr"])
        return checked

    def _option_names(self) -> tuple[str, ...]:
        """The rule's options besides ``lr``."""
        return ()

    def _given(self, group: Mapping[str, Any]) -> dict[str, Any]:
        """A group's options: its other entries are its parameters and what schedules keep
        there (``initial_lr``, ``max_lr``, ...)."""
        return {k: group[k] for k in ("lr", *self._option_names()) if k in group}

    def options(self, index: int = 0) -> dict[str, Any]:
        """Group ``index``'s options (validated: a changed option is checked when used)."""
        group = self.param_groups[index]
        given = self._given(group)
        checked = self.__dict__.setdefault("_checked", {})
        known = checked.get(index)
        if known is not None and known[0] == given:  # unchanged since last checked
            return dict(known[1])
        found = self._check(given, f"param_groups[{index}]: ")
        checked[index] = (given, found)
        return dict(found)

    def __getattr__(self, name: str) -> Any:
        defaults = self.__dict__.get("defaults")
        if defaults is not None and name in defaults:
            return self.__dict__["param_groups"][0][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        defaults = self.__dict__.get("defaults")
        if defaults is not None and name in defaults:
            for index, group in enumerate(self.param_groups):
                options = self._given(group)
                options[name] = value
                group[name] = self._check(options, f"param_groups[{index}]: ")[name]
            return
        object.__setattr__(self, name, value)

    def settings(self) -> tuple[tuple[tuple[str, Any], ...], ...]:
        """Every group's options but the learning rate (which changes from step to step):
        what a compiled step bakes in, so a change means compiling again."""
        return tuple(
            tuple(sorted((k, v) for k, v in self.options(i).items() if k != "lr"))
            for i in range(len(self.param_groups))
        )

    # -- the rule ---------------------------------------------------------------------------

    def _scalars(self, step: int, options: Mapping[str, Any]) -> dict[str, float]:
        """The numbers of the update of a group at its ``step``-th update that change from
        step to step (learning rate, bias corrections): Python floats here, 0-d arrays in a
        compiled step."""
        return {"lr": options["lr"]}

    def _update(
        self,
        param: Any,
        grad: Any,
        state: dict[str, Any],
        scalars: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> Any:
        """The new flat parameters; writes the new state arrays into ``state`` (arrays are
        replaced, never modified)."""
        raise NotImplementedError

    def _initial_state(self, param: Any, options: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def update(
        self,
        param: Any,
        grad: Any,
        state: dict[str, Any],
        scalars: Mapping[str, Any],
        index: int = 0,
    ) -> Any:
        """One update of a flat group's buffers, with the options of parameter group
        ``index``: the new parameters; the new state arrays are written into ``state``.
        Pure (no host reads, no in-place writes), so compiled steps
        (:func:`xpnet.compile_step`) trace it."""
        return self._update(param, grad, state, scalars, self.options(index))

    def initial_state(self, param: Any, index: int = 0) -> dict[str, Any]:
        """State arrays for a flat group's parameters ``param`` that update exactly as no
        state does, for compilers that need the state's layout fixed from the first step
        (none where the rule's first step differs, as SGD's momentum does)."""
        return self._initial_state(param, self.options(index))

    def scalars(self, step: int, index: int = 0) -> dict[str, float]:
        """The numbers of a flat group's ``step``-th update that change between steps."""
        return self._scalars(step, self.options(index))

    # -- groups -----------------------------------------------------------------------------

    def group_of(self) -> dict[str, int]:
        """Each optimized parameter's group index."""
        return {name: i for i, group in enumerate(self.param_groups) for name in group["params"]}

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
        """The flat groups that update ``names`` (those of them in a parameter group)
        together, formed anew where the parameters' group, step counts, state slots or
        arrays' kinds changed."""
        params = dict(self.model.named_parameters())
        owner = self.group_of()
        kinds = {
            name: (group.step, tuple(sorted(group.state)))
            for group in self._groups
            for name in group.names
        }
        keys: dict[tuple[Any, ...], list[str]] = {}
        for name in names:
            if name not in owner:
                continue  # in no parameter group: not optimized (torch's rule)
            param = params[name]
            if name in kinds:
                step, slots = kinds[name]
            else:
                step, state = self._loose.get(name, (0, {}))
                slots = tuple(sorted(state))
            key = (
                owner[name],
                array_api_compat.array_namespace(param),
                str(array_api_compat.device(param)),
                str(param.dtype),
                step,
                slots,
            )
            keys.setdefault(key, []).append(name)
        wanted = [(tuple(members), key[4], key[0]) for key, members in keys.items()]
        kept = {
            g.names: g for g in self._groups if (g.names, g.index) in {(m, i) for m, _, i in wanted}
        }
        dissolved = [g for g in self._groups if g.names not in kept]
        if dissolved:  # their parameters' state goes loose until regrouped
            self._loose.update(self._param_states(dissolved))
        self._groups = list(kept.values())
        result = []
        for members, step, index in wanted:
            group = kept.get(members)
            if group is None:
                group = ParamGroup.of(list(members), params, step, index)
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
                group.state[slot] = on_host_then_like(value, flat_param)

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
        """Update every parameter of a parameter group that has a gradient in ``grads``.

        Parameters missing from ``grads`` (frozen ones, say) are left alone, and their
        state does not advance, as in torch when a parameter's ``.grad`` is ``None``; so
        are parameters in no parameter group.

        Raises
        ------
        KeyError
            If ``grads`` names something that is not a trainable parameter.
        ValueError
            If a gradient's shape differs from its parameter's, or an option set in
            ``param_groups`` is out of range.
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
            numbers = self.scalars(group.step, group.index)
            new = self.update(flat_param, flat_grad, group.state, numbers, group.index)
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

    def hyperparameters(self, index: int = 0) -> dict[str, float | bool]:
        """The options of parameter group ``index`` as checkpoint scalars."""
        return dict(self.options(index))

    def state_dict(self) -> dict[str, Any]:
        """Flat mapping: ``"step"``, the first group's options (``"lr"``, ...), the other
        groups' as ``"group<i>.<option>"`` (with ``"param_groups"``, their number), and
        ``"state.<param>.<slot>"`` entries.

        Values are Python scalars or arrays (on the parameters' backend), which is what
        :func:`xpnet.train.save_checkpoint` stores.
        """
        flat: dict[str, Any] = {"step": self.step_count, **self.hyperparameters(0)}
        if len(self.param_groups) > 1:
            flat["param_groups"] = len(self.param_groups)
            for index in range(1, len(self.param_groups)):
                for key, value in self.hyperparameters(index).items():
                    flat[f"group{index}.{key}"] = value
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
        self,
        flat: Mapping[str, Any],
        loaded: Mapping[str, tuple[int, dict[str, Any]]],
        step_count: int,
    ) -> None:
        """A state that has taken steps holds every slot of every parameter: filling a
        missing one with zeros would resume a different run, silently."""
        if not loaded and step_count == 0:
            return  # a fresh optimizer's state
        gaps = []
        params = dict(self.model.named_parameters())
        for name, index in self.group_of().items():
            needed = set(self.initial_state(params[name], index))
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

    def _loaded_options(self, flat: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Each group's options from ``flat``, converted and checked."""
        given = flat.get("param_groups", 1)
        count = whole(given)
        if count is None or count < 1:
            raise ValueError(
                f"optimizer state 'param_groups': expected a whole number of parameter "
                f"groups, got {given!r}"
            )
        if count != len(self.param_groups):
            raise ValueError(
                f"optimizer state has {count} parameter groups, this optimizer has "
                f"{len(self.param_groups)}; build it with the same param_groups"
            )
        found = []
        for index, group in enumerate(self.param_groups):
            prefix = "" if index == 0 else f"group{index}."
            options = self._given(group)
            for key, current in list(options.items()):
                if prefix + key in flat:
                    options[key] = saved_option(flat[prefix + key], current, prefix + key)
            found.append(self._check(options, f"optimizer state, param_groups[{index}]: "))
        return found

    def load_state_dict(self, flat: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (arrays may come from the host).

        Raises
        ------
        KeyError
            If the state names a parameter the model lacks or an unknown slot.
        ValueError
            If a state array's shape differs from its parameter's, a state that has taken
            steps lacks a slot of some parameter (it would be zero-filled), the number of
            parameter groups differs, or a saved option is out of range.
        """
        if not isinstance(flat, Mapping):
            raise TypeError(
                "state: expected the mapping Optimizer.state_dict() returns, got "
                f"{type(flat).__name__}"
            )
        if not flat:  # even a fresh optimizer's state has its step count and options
            raise ValueError(
                "optimizer state is empty: expected the mapping Optimizer.state_dict() returns"
            )
        given = flat.get("step", 0)
        step_count = whole(given)
        if step_count is None or not 0 <= step_count <= MAX_STEPS:
            raise ValueError(
                f"optimizer state 'step': expected a whole count from 0 to 2**63 - 1, got {given!r}"
            )
        params = dict(self.model.named_parameters())
        options = self._loaded_options(flat)
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
            host = backends.to_numpy(value)
            if slot == "step":
                single = host.reshape(-1)[0] if host.size == 1 else None
                count = whole(single)
                if count is None or not 0 <= count <= step_count:
                    # A parameter takes at most the optimizer's steps (fewer while frozen).
                    shown = single.item() if isinstance(single, np.generic) else single
                    raise ValueError(
                        f"optimizer state {key!r}: expected a whole step count from 0 to the "
                        f"optimizer's {step_count} steps, got "
                        + (repr(shown) if host.size == 1 else f"an array of shape {host.shape}")
                    )
                loaded[name] = (count, state)
                continue
            shape = tuple(host.shape)
            if shape != tuple(param.shape):
                raise ValueError(
                    f"optimizer state {key!r} has shape {shape}, parameter has {tuple(param.shape)}"
                )
            if slot in self.non_negative_slots and bool((host < 0).any()):
                raise ValueError(
                    f"optimizer state {key!r}: holds negative values, which {slot} never has "
                    "(the state was damaged or edited)"
                )
            state[slot] = on_host_then_like(value, param)
            loaded[name] = (step, state)
        self._check_complete(flat, loaded, step_count)
        self._groups, self._loose = [], loaded
        self.step_count = step_count
        for group, chosen in zip(self.param_groups, options, strict=True):
            group.update(chosen)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        groups = f", {len(self.param_groups)} param_groups" if len(self.param_groups) > 1 else ""
        return f"{type(self).__name__}({shown}{groups})"
