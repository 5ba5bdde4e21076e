"""FlatOptimizer: what the fastoptim.torch classes add to their torch.optim base class.

Each class derives from the torch.optim class it replaces, so construction, param groups,
defaults, schedulers, hooks and the state_dict format are torch's own. What changes: the
parameters and gradients live in flat buffers (see buckets.py) and ``step`` is one
fastoptim kernel call per bucket on zero-copy numpy views.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch

from fastoptim.flat import FlatParams
from fastoptim.kernels.interpolation import interpolate
from fastoptim.optim import Optimizer
from fastoptim.optim.hyperparameters import check_ema_decay
from fastoptim.optim.nonfinite import NonFiniteGuard
from fastoptim.optim.state_dtypes import STORAGE_OPTIONS
from fastoptim.torch import stored_state
from fastoptim.torch.buckets import Bucket, build_buckets, check_parameters
from fastoptim.torch.compatibility import check_torch_version
from fastoptim.torch.state_table import ExposedState, StateTable

# torch options that only choose torch's implementation: accepted, and the kernel is fused
IMPLEMENTATION_OPTIONS = ("foreach", "fused")
# torch options fastoptim cannot honour: refused when set
UNSUPPORTED_OPTIONS = ("capturable", "differentiable")
# the key of a parameter's weight EMA in its state (ema_decay)
EMA = "ema"
# how far a saved step function's value (NAdam's mu_product, in (0, 1]) may be from the one
# its step count gives
STEP_VALUE_TOLERANCE = 1e-6


class FlatOptimizer:
    """Mixin placed before a torch.optim class; subclasses set ``core_class``.

    ``nonfinite`` and ``max_consecutive_skips`` (keyword-only, fastoptim's own) say what a
    step does with NaN or Inf in the gradients, as for every fastoptim optimizer: by default
    the step is skipped with a warning (torch.optim would write the NaN into the weights).
    ``state_dtype`` (keyword-only; a param group may set its own) stores the state in
    fewer bits, as in the numpy API: ``'bfloat16'`` state tensors are torch.bfloat16,
    ``'int8'`` ones int8/uint8 codes beside ``<key>_scales`` (stored_state.py), in blocks
    of ``block_size`` (keyword-only or per group too; None: 256). ``ema_decay``
    (keyword-only) keeps a weight EMA moved inside the step's pass, as swa_utils'
    ``AveragedModel`` with ``get_ema_multi_avg_fn(ema_decay)``: ``optimizer.ema`` and
    ``optimizer.ema_weights()``.
    """

    # set by each class: which fastoptim optimizer updates a param group
    core_class: Callable[[dict], type[Optimizer]]
    has_step_state = True  # torch keeps state['step'] (SGD does not)
    # torch state values that are functions of a parameter's step count (NAdam's
    # mu_product): key -> f(core optimizer, step), kept as float32 0-d tensors
    step_functions: Mapping[str, Callable[[Optimizer, int], float]] = MappingProxyType({})
    # the step functions whose saved value the next step reads (ASGD's eta and mu: torch
    # computes them after a step, from that step's lr): a loaded value is adopted as it is
    carried: tuple[str, ...] = ()

    param_groups: list[dict[str, Any]]
    defaults: dict[str, Any]
    state: Any

    def __init__(
        self,
        params: Any,
        *args: Any,
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
        state_dtype: str | None = None,
        block_size: int | None = None,
        ema_decay: float | None = None,
        **kwargs: Any,
    ) -> None:
        check_torch_version()
        guard = NonFiniteGuard(nonfinite, max_consecutive_skips)  # checked before torch's init
        ema_decay = check_ema_decay(ema_decay)
        super().__init__(params, *args, **kwargs)  # type: ignore[call-arg]
        self.nonfinite = guard
        self.ema_decay = ema_decay
        storage = {"state_dtype": state_dtype, "block_size": block_size}
        for key, value in storage.items():
            if value is None:  # by default the groups stay as torch's own
                continue
            self.defaults[key] = value  # groups added later take it
            for group in self.param_groups:
                if group.get(key) is None:
                    group[key] = value
        for group in self.param_groups:
            _check_torch_options(group)
        check_parameters(self.param_groups)
        self._buckets: list[Bucket] = []
        self._build(initial_state=dict(self.state), torch_made=True)

    # -- building -----------------------------------------------------------------------------
    def _build(self, initial_state: dict, torch_made: bool = False) -> None:
        """(Re)make the flat buffers from the current param groups, then adopt
        ``initial_state`` (torch-format state by parameter) into them: as stored, or, when
        ``torch_made`` (the state torch's own __init__ makes, Adagrad's sum), in the
        parameters' dtype, encoded into the state dtype once."""
        self._buckets = build_buckets(self.param_groups, self._make_core)
        self.state = self._table = StateTable()
        for bucket in self._buckets:
            for key in self.step_functions:
                bucket.keep_step_values(key)
            for index, param in enumerate(bucket.params):
                saved = initial_state.get(param)
                name, keys = bucket.names[index], self._state_keys(bucket)
                if saved and torch_made and stored_state.mismatch(bucket.core, name, keys, saved):
                    saved = stored_state.converted(bucket.core, name, keys, saved)
                if saved:
                    self._adopt(bucket, index, self._checked_state(bucket, index, saved))
            bucket.recount_uniform()

    def _make_core(self, group: dict, params: FlatParams) -> tuple[Optimizer, dict]:
        core_class = self.core_class(group)
        options = group_options(group, core_class)
        core = core_class(params, **options, nonfinite="ignore", ema_decay=self.ema_decay)
        return core, options  # the NaN/Inf check is ours

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group``; the buffers are then remade with the new group, and
        the state of the parameters already there moves with them."""
        super().add_param_group(param_group)  # type: ignore[misc]
        if not hasattr(self, "_buckets"):
            return  # torch's __init__ adds the first groups; _build follows
        _check_torch_options(self.param_groups[-1])
        check_parameters(self.param_groups)
        self._take_outside_state()
        current = {p: {k: v.clone() for k, v in s.items()} for p, s in self.state.items()}
        self._build(initial_state=current)

    # -- copying ------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """What a copy or pickle keeps: torch's (defaults, state, param_groups) and the
        public attributes fastoptim adds; the copy makes buffers of its own."""
        state: dict[str, Any] = super().__getstate__()  # type: ignore[misc,assignment]
        state["nonfinite"] = self.nonfinite
        state["ema_decay"] = self.ema_decay
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        if "_buckets" not in self.__dict__:  # a copy or an unpickled optimizer: build it
            self._build(initial_state=dict(self.state))

    # -- the weight EMA -------------------------------------------------------------------------
    @property
    def ema(self) -> list[torch.Tensor] | None:
        """The weight EMA (``ema_decay``): one tensor per parameter in ``param_groups``
        order, views of the buffers the step moves (``state[p]['ema']`` too); None
        without ``ema_decay``."""
        if self.ema_decay is None:
            return None
        where = {id(p): (b, i) for b in self._buckets for i, p in enumerate(b.params)}
        averages = []
        for group in self.param_groups:
            for param in group["params"]:
                bucket, index = where[id(param)]
                average = bucket.core.ema
                assert average is not None  # every core has one with ema_decay
                averages.append(torch.from_numpy(average[bucket.names[index]]))
        return averages

    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[None]:
        """``with optimizer.ema_weights(): evaluate(model)``: the model's parameters hold
        the weight EMA inside the block, swapped in place (one pass per bucket) and back
        on leaving; a step inside the block raises."""
        if self.ema_decay is None:
            raise ValueError(
                "this optimizer keeps no weight EMA; construct it with ema_decay=0.999 "
                "(or another decay)"
            )
        with contextlib.ExitStack() as stack:
            for bucket in self._buckets:
                stack.enter_context(bucket.core.ema_weights())
            yield

    # -- stepping -----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient, as the torch.optim class does;
        the parameters whose gradient is None are left alone (their step count too).

        With ``fused=True`` torch.amp.GradScaler leaves the gradients scaled and sets
        ``grad_scale`` and ``found_inf`` on the optimizer, as for torch's fused step: the
        kernel unscales (one more factor of its gradient scale, no extra pass), and a
        found inf skips the step (parameters, state and step counts unchanged)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if any(bucket.core.ema_in_params for bucket in self._buckets):
            raise RuntimeError(
                "the parameters hold the weight EMA (inside optimizer.ema_weights()); step "
                "after the block"
            )
        self._sync_hyperparameters()
        self._take_outside_state()
        found_inf, scale = getattr(self, "found_inf", None), getattr(self, "grad_scale", None)
        plans = [self._plan(bucket) for bucket in self._buckets]
        if found_inf is not None and float(found_inf) != 0.0:
            self._skip(plans)
            return loss
        unscale = 1.0 if scale is None else 1.0 / float(scale)
        if not self.nonfinite.allows(
            [grad for plan in plans for grad in _grads_read(plan.bucket, plan.active)],
            lambda: _offending(plans),
        ):
            return loss
        self._step_begins()
        for plan in plans:
            if plan.active is None:
                self._step_whole(plan.bucket, unscale)
            else:
                self._step_layers(plan.bucket, plan.active, unscale)
            for index in plan.outside_data:  # the parameter's own data, outside the buffer
                plan.bucket.params[index].data.copy_(plan.bucket.data_views[index])
        return loss

    def _step_begins(self) -> None:
        """The step is taken (no check refused it, nothing skips it): what a class does
        first (Schedule-Free AdamW advances its param groups' weight sums)."""

    def _sync_hyperparameters(self) -> None:
        """Give each bucket's optimizer its group's current settings (schedulers and users
        change them in ``param_groups``); checked before anything changes."""
        for bucket in self._buckets:
            group = self.param_groups[bucket.group_index]
            core = bucket.core
            if self.core_class(group) is not type(core):
                raise ValueError(
                    f"param_groups[{bucket.group_index}] now asks for another algorithm "
                    f"than {type(core).__name__}; construct a new optimizer for it"
                )
            options = group_options(group, type(core))
            if options != bucket.options:
                core.set_hyperparameters(**options)  # validates, then sets
                bucket.options = options

    def _plan(self, bucket: Bucket) -> Plan:
        """What one step does with a bucket. ``active`` is None when the whole bucket steps
        as one (every gradient in the buffer, every step count equal); else the indices of
        the parameters that have a gradient, whose gradients are first copied into the
        buffer (and re-attached there). A parameter whose ``.data`` outside code replaced
        (ZeroRedundancyOptimizer's bucket views) keeps that data: its values are copied
        into the buffer now and back after the update."""
        if bucket.uniform and bucket.attached():
            return Plan(bucket, None, [])
        active, outside_data = [], []
        for index, (param, view) in enumerate(zip(bucket.params, bucket.grad_views, strict=True)):
            if param.data_ptr() != bucket.data_pointers[index]:
                _take_outside_data(bucket, index)
                outside_data.append(index)
            grad = param.grad
            if grad is None:
                continue
            if grad is not view:
                if grad.is_sparse:
                    raise TypeError(
                        f"the gradient of {bucket.names[index]!r} is sparse; fastoptim.torch "
                        "takes dense gradients"
                    )
                view.copy_(grad)
                param.grad = view  # backward accumulates into the buffer again
            active.append(index)
        if bucket.uniform and len(active) == len(bucket.params):
            return Plan(bucket, None, outside_data)
        return Plan(bucket, active, outside_data)

    def _step_whole(self, bucket: Bucket, grad_scale: float) -> None:
        """One kernel call over the bucket, at the step count every parameter shares (the
        bucket's ``steps`` are the only count: the core's own ``t`` is not used)."""
        if bucket.steps.size == 0:
            return
        core, t = bucket.core, int(bucket.steps[0]) + 1
        carried = self._carried_values(bucket, slice(None), t)
        if carried is None:  # the parameters carry different values: one call each
            self._step_layers(bucket, list(range(len(bucket.params))), grad_scale)
            return
        core.apply(core.plan(bucket.grads), t, core.learning_rates(t), grad_scale, carried)
        bucket.count_steps()
        for key, function in self.step_functions.items():  # one step count: one value
            bucket.step_values[key].fill(function(core, t))
        if not bucket.exposed:
            for index in range(len(bucket.params)):
                self._expose(bucket, index)
            bucket.exposed = True

    def _step_layers(self, bucket: Bucket, active: list[int], grad_scale: float) -> None:
        """One kernel call per parameter that has a gradient, each at its own step count."""
        for index in active:
            name = bucket.names[index]
            t = int(bucket.steps[index]) + 1
            carried = self._carried_values(bucket, slice(index, index + 1), t)
            grad = bucket.grads[name].reshape(-1)
            bucket.core.update_layer(name, grad, t, grad_scale, carried)
            self._expose(bucket, index)
        bucket.count_steps(active)
        self._update_step_values(bucket, active)
        _move_ema_of_the_rest(bucket, active)

    def _adopt_ema(self, bucket: Bucket, index: int, saved: dict[str, Any] | None) -> None:
        """A parameter's weight EMA from its adopted state, or its weights where that has
        none (torch.optim's state, or a fresh start); a loaded state means steps were
        taken, so the next one does not copy the weights."""
        ema = bucket.core.ema
        if ema is None:
            return
        name = bucket.names[index]
        has_average = saved is not None and EMA in saved
        ema[name][...] = saved[EMA].numpy() if has_average else bucket.core.params[name]  # type: ignore[index]
        if saved is not None:
            bucket.core.ema_steps = max(bucket.core.ema_steps, 1)

    def _carried_values(self, bucket: Bucket, where: slice, t: int) -> dict[str, float] | None:
        """The carried values step ``t`` of the parameters ``where`` reads: none on a first
        step (torch makes them then, from the lr of that moment, as the scalar function
        does), else the saved ones; None when these parameters' values differ."""
        if t == 1 or not self.carried:
            return {}
        carried = {}
        for key in self.carried:
            values = bucket.step_values[key][where]
            if values.min() != values.max():
                return None
            carried[key] = float(values[0])
        return carried

    def _update_step_values(self, bucket: Bucket, indices: Iterable[int]) -> None:
        """The step functions' values at the parameters' step counts now."""
        for key, function in self.step_functions.items():
            values = bucket.step_values[key]
            for index in indices:
                values[index] = function(bucket.core, int(bucket.steps[index]))

    def _skip(self, plans: list[Plan]) -> None:
        """GradScaler found an inf: nothing is updated. As torch's fused step, every
        parameter with a gradient then has its state, at the step count it had."""
        if not self.has_step_state:
            return  # torch's fused SGD would keep an uninitialised momentum buffer
        for plan in plans:
            bucket = plan.bucket
            for index in range(len(bucket.params)) if plan.active is None else plan.active:
                self._expose(bucket, index)

    def _expose(self, bucket: Bucket, index: int) -> None:
        """torch's ``state[param]`` for a parameter that has stepped: views of the buffers."""
        if bucket.exposed_states[index] is not None:
            return
        values = self._views_of(bucket, index)
        if not values:
            return  # as torch: no entry for a parameter without state (SGD, no momentum)
        state = ExposedState(self._table, values)
        self._table.put(bucket.params[index], state)
        bucket.exposed_states[index] = state

    def _views_of(self, bucket: Bucket, index: int) -> dict[str, torch.Tensor]:
        """A parameter's torch-format state as views of the buffers."""
        name = bucket.names[index]
        values: dict[str, torch.Tensor] = {}
        if self.has_step_state:
            values["step"] = bucket.step_views[index]
        for key in self.step_functions:
            values[key] = bucket.step_value_views[key][index]
        for key in stored_state.keys(bucket.core, name, self._state_keys(bucket)):
            values[key] = stored_state.as_tensor(stored_state.buffer_view(bucket.core, name, key))
        if bucket.core.ema is not None:
            values[EMA] = torch.from_numpy(bucket.core.ema[name])
        return values

    def _state_keys(self, bucket: Bucket) -> tuple[str, ...]:
        """The state tensors torch keeps for this bucket's parameters (besides 'step')."""
        return tuple(bucket.core.state)

    def _adopt(self, bucket: Bucket, index: int, saved: dict[str, Any] | None) -> None:
        """Copy checked torch-format state of one parameter into the buffers (None: start
        that parameter afresh, as torch does when its state is empty)."""
        name = bucket.names[index]
        for key in stored_state.keys(bucket.core, name, self._state_keys(bucket)):
            target = stored_state.buffer_view(bucket.core, name, key)
            if saved is None:
                target.fill(0)
            else:
                stored_state.write(target, saved[key])
        self._adopt_ema(bucket, index, saved)
        if saved is None:
            bucket.steps[index] = 0.0
        else:  # SGD counts no steps: a saved momentum buffer means its first step is behind it
            bucket.steps[index] = saved["step"] if self.has_step_state else 1.0
        self._update_step_values(bucket, [index])
        if saved is not None:
            for key in self.carried:
                bucket.step_values[key][index] = saved[key]
        previous = bucket.exposed_states[index]
        in_place = saved is not None and self._table.get(bucket.params[index]) is previous
        if previous is not None and in_place:
            previous.refill(self._views_of(bucket, index))  # written into: the same dict again
            return
        bucket.exposed = False
        bucket.exposed_states[index] = None
        self._table.drop(bucket.params[index])
        if saved is not None:
            self._expose(bucket, index)

    def _take_outside_state(self) -> None:
        """Adopt what outside code wrote into ``state`` since the last step (a parameter's
        state replaced or emptied, or the whole table replaced): checked first, then
        copied into the buffers. One attribute read when nothing was written."""
        table = self.state
        if table is self._table and not table.written:
            return
        changes: list[tuple[Bucket, int, dict | None]] = []
        for bucket in self._buckets:
            for index, param in enumerate(bucket.params):
                mine = bucket.exposed_states[index]
                entry = table.get(param)
                if entry is mine and (mine is None or not mine.written):
                    continue
                if entry:
                    changes.append((bucket, index, self._checked_state(bucket, index, entry)))
                elif mine is not None or bucket.steps[index] != 0:
                    changes.append((bucket, index, None))
        others = {key: value for key, value in table.items() if value and key not in self._params}
        if table is not self._table:  # replaced: what it holds for our parameters is adopted
            self.state = self._table
            for bucket in self._buckets:
                for index, state in enumerate(bucket.exposed_states):
                    if state is not None:
                        self._table.put(bucket.params[index], state)
        for bucket, index, saved in changes:
            self._adopt(bucket, index, saved)
        for key, value in others.items():  # not one of our parameters: kept as it is
            self._table.put(key, value)
        for bucket in self._buckets:
            bucket.recount_uniform()
        self._table.written = False

    @property
    def _params(self) -> set[torch.Tensor]:
        return {param for bucket in self._buckets for param in bucket.params}

    # -- gradients ----------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """torch's ``zero_grad``. With ``set_to_none=False`` every gradient that is not None
        is zeroed in the buffer (one fill per bucket) and re-attached there if it had moved
        out, so the next backward accumulates straight into the buffer."""
        if set_to_none:
            super().zero_grad(set_to_none=True)  # type: ignore[misc]
            return
        for bucket in self._buckets:
            if bucket.attached():
                bucket.grads.buffer.fill(0)
                continue
            for param, view in zip(bucket.params, bucket.grad_views, strict=True):
                if param.grad is not None:
                    view.zero_()
                    param.grad = view

    # -- saving and restoring -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict``: live tensors (views of the buffers), in plain dicts so
        that ``torch.load(weights_only=True)`` reads a saved one."""
        saved = super().state_dict()  # type: ignore[misc]
        saved["state"] = {key: dict(value) for key, value in saved["state"].items()}
        return saved

    def load_state_dict(
        self, state_dict: dict[str, Any], convert_state_dtype: bool = False
    ) -> None:
        """torch's ``load_state_dict`` (a state dict of this class or of the torch.optim
        class it replaces, or this optimizer's own live one), then the state is checked and
        copied into the buffers; what it does not name starts afresh. On any error the
        optimizer is left as it was.

        State saved with another ``state_dtype`` is refused unless ``convert_state_dtype``
        (decoded, then rounded or quantized once into this optimizer's state dtype)."""
        state_dict = self._in_own_state_dtype(state_dict, convert_state_dtype)
        before_state, before_groups = self.state, [dict(g) for g in self.param_groups]
        super().load_state_dict(state_dict)  # type: ignore[misc]
        try:
            self._sync_hyperparameters()
            self._take_outside_state()  # the loaded state replaced the table: adopted
        except Exception:
            self.__setstate__({"state": before_state, "param_groups": before_groups})  # type: ignore[attr-defined]
            self._sync_hyperparameters()
            raise

    def _in_own_state_dtype(self, state_dict: Any, convert: bool) -> Any:
        """``state_dict`` with its state in this optimizer's state dtypes: itself when it
        is (checked before torch's load casts floating state to the parameters' dtype);
        converted when ``convert``; else a ValueError saying what differs."""
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict):
            return state_dict  # torch's load says what is wrong
        where = {id(p): (b, i) for b in self._buckets for i, p in enumerate(b.params)}
        order = [p for group in self.param_groups for p in group["params"]]
        state = dict(state_dict["state"])
        for position, saved in state_dict["state"].items():
            if not isinstance(position, int) or not 0 <= position < len(order):
                continue
            bucket, index = where[id(order[position])]
            name, keys = bucket.names[index], self._state_keys(bucket)
            difference = stored_state.mismatch(bucket.core, name, keys, saved)
            if difference is None:
                continue
            if not convert:
                raise ValueError(
                    f"state of {name!r} was saved with another state_dtype: {difference}. "
                    "Convert it explicitly: opt.load_state_dict(state_dict, "
                    "convert_state_dtype=True)"
                )
            state[position] = stored_state.converted(bucket.core, name, keys, saved)
        groups = state_dict.get("param_groups")
        if isinstance(groups, list) and len(groups) == len(self.param_groups):
            # the state dtype is this optimizer's (the state now is): a group saved by
            # torch.optim, or before a conversion, does not change it
            groups = [
                _with_state_dtype_of(own, saved) if isinstance(saved, dict) else saved
                for saved, own in zip(groups, self.param_groups, strict=True)
            ]
        return {**state_dict, "state": state, "param_groups": groups}

    def _checked_state(self, bucket: Bucket, index: int, saved: dict) -> dict:
        """A parameter's torch-format state, checked and copied (it may be a view of the
        very buffers it is copied into): the tensors this bucket keeps, of the parameter's
        shape, finite, and a whole ``step`` >= 0 where torch counts steps."""
        param, label = bucket.params[index], f"state of {bucket.names[index]!r}"
        core, name = bucket.core, bucket.names[index]
        stored_keys = stored_state.keys(core, name, self._state_keys(bucket))
        keys = stored_keys + (("step",) if self.has_step_state else ()) + tuple(self.step_functions)
        missing = [key for key in keys if key not in saved]
        if missing:
            raise KeyError(f"{label} lacks {missing}; it was saved by another algorithm or options")
        checked: dict[str, Any] = {}
        for key in stored_keys:
            value = saved[key]
            shape = stored_state.buffer_view(core, name, key).shape
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(shape):
                found = (
                    f"has shape {tuple(value.shape)}"
                    if isinstance(value, torch.Tensor)
                    else f"is a {type(value).__name__}"
                )
                what = (
                    "its number of blocks"
                    if key.endswith(stored_state.SCALES)
                    else "the parameter's shape"
                )
                raise ValueError(
                    f"{label}[{key!r}] {found}, not a tensor of {what} {tuple(shape)}: the "
                    "state dict belongs to another model"
                )
            codes = not value.is_floating_point()  # int8 state's codes: kept as they are
            dtype = stored_state.expected_dtype(core, name, key) if codes else param.dtype
            if codes and value.dtype != dtype:
                raise ValueError(f"{label}[{key!r}] is {value.dtype}; expected {dtype}")
            value = value.detach().to("cpu", dtype, copy=True)
            if not codes and not torch.isfinite(value).all():
                raise ValueError(f"{label}[{key!r}] holds NaN or Inf; it cannot continue training")
            checked[key] = value
        if bucket.core.ema is not None and saved.get(EMA) is not None:
            value = saved[EMA]
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"{label}[{EMA!r}] is not a tensor of the parameter's shape "
                    f"{tuple(param.shape)}: the state dict belongs to another model"
                )
            value = value.detach().to("cpu", param.dtype, copy=True)
            if not torch.isfinite(value).all():
                raise ValueError(f"{label}[{EMA!r}] holds NaN or Inf; it cannot continue training")
            checked[EMA] = value
        if self.has_step_state:
            step = float(saved["step"])
            if not (step >= 0 and step == int(step)):
                raise ValueError(f"{label}['step'] is {step}; expected a whole number >= 0")
            checked["step"] = step
        for key in self.carried:
            value = float(saved[key])
            if not math.isfinite(value):
                raise ValueError(f"{label}[{key!r}] is {value!r}; it cannot continue training")
            checked[key] = value
        for key, function in self.step_functions.items():
            if key in self.carried:
                continue
            expected = function(core, int(checked["step"]))
            # torch's own value drifts from the float32 product once a load has cast it to
            # float64 (about 1e-8); another setting during training moves it far more
            if not abs(float(saved[key]) - expected) <= STEP_VALUE_TOLERANCE:
                raise ValueError(
                    f"{label}[{key!r}] is {float(saved[key])!r}, not {expected!r}, its value "
                    f"at step {int(checked['step'])} for this param group's settings: "
                    f"fastoptim.torch computes {key} from the step count (it differs when a "
                    "setting it depends on was changed during training); load it into "
                    f"torch.optim.{type(self).__name__} instead"
                )
        return checked


class Plan(NamedTuple):
    """What one step does with one bucket (see ``FlatOptimizer._plan``)."""

    bucket: Bucket
    active: list[int] | None  # None: the whole bucket in one kernel call
    outside_data: list[int]  # parameters whose data outside code replaced


def _move_ema_of_the_rest(bucket: Bucket, active: list[int]) -> None:
    """After a step of the parameters ``active`` one by one: the weight EMA of the others
    moves too (their weights did not), as swa_utils' AveragedModel averages every
    parameter after every step; then the step is counted."""
    core, ema = bucket.core, bucket.core.ema
    if ema is None:
        return
    weight, stepped = core.ema_weight(), set(active)
    for index, name in enumerate(bucket.names):
        if index not in stepped:
            average, param = ema[name].reshape(-1), core.params[name].reshape(-1)
            interpolate.variant_for(param)(average, param, weight, 1.0 - weight)
    core.ema_steps += 1


def _take_outside_data(bucket: Bucket, index: int) -> None:
    """Copy a parameter's replaced ``.data`` into its range of the buffer (checked first)."""
    param, view = bucket.params[index], bucket.data_views[index]
    if param.shape != view.shape or param.dtype != view.dtype:
        raise ValueError(
            f"{bucket.names[index]!r} was given data of shape {tuple(param.shape)} and "
            f"{param.dtype} instead of {tuple(view.shape)} and {view.dtype}; construct a new "
            "optimizer for it"
        )
    view.copy_(param.data)


def _grads_read(bucket: Bucket, active: list[int] | None) -> list[np.ndarray]:
    if active is None:
        return [bucket.grads.buffer]
    return [bucket.grads[bucket.names[index]].reshape(-1) for index in active]


def _offending(plans: list[Plan]) -> list[str]:
    names = []
    for bucket, active, _ in plans:
        for index in range(len(bucket.params)) if active is None else active:
            if not np.isfinite(bucket.grads[bucket.names[index]]).all():
                names.append(bucket.names[index])
    return names


def _check_torch_options(group: dict) -> None:
    for option in UNSUPPORTED_OPTIONS:
        if group.get(option):
            raise ValueError(
                f"{option}=True is not supported by fastoptim.torch (a CPU optimizer over "
                "flat buffers); use torch.optim for it"
            )


def group_options(group: dict, core_class: type[Optimizer]) -> dict[str, Any]:
    """A torch param group's settings, as the fastoptim class takes them: each declared
    hyper-parameter, read under torch's name for it (fastoptim's own options, which a
    torch.optim group lacks, at their defaults)."""
    return {
        hp.name: _plain(group[hp.torch_key] if hp.in_torch else group.get(hp.torch_key, hp.default))
        for hp in core_class.declaration.hyperparameters
    }


def _with_state_dtype_of(own: dict, saved: dict) -> dict:
    """A saved param group with this optimizer's group's state dtype and block size (or
    none, as torch's)."""
    group = {key: value for key, value in saved.items() if key not in STORAGE_OPTIONS}
    group.update({key: own[key] for key in STORAGE_OPTIONS if key in own})
    return group


def _plain(value: Any) -> Any:
    """Plain Python values for fastoptim's checks (torch allows tensors for lr and betas)."""
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value
