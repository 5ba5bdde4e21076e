"""Optimizer: the shared machinery of every fastoptim optimizer class.

Owns the flat parameters, one flat buffer per state, and the step counter; turns whatever
gradients ``step`` receives into validated segments; runs the algorithm's kernel; saves and
restores everything through ``state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from functools import cached_property, partial
from typing import Any, ClassVar

import numpy as np

from fastoptim import kernels, schedules
from fastoptim.flat import FlatParams, Layout, flatten, layers_difference
from fastoptim.kernels import ElementwiseKernel
from fastoptim.optim.groups import (
    Group,
    ResolvedGroup,
    layer_order,
    resolve_groups,
    restored_groups,
)
from fastoptim.optim.hyperparameters import (
    check_grad_scale,
    check_learning_rate,
    check_lr_or_schedule,
    check_step,
)
from fastoptim.optim.nonfinite import NonFiniteGuard
from fastoptim.optim.segments import (
    Segment,
    check_no_shared_memory,
    check_same_layout,
    check_writable,
    layer_grad,
    memory_owner,
)

# The cached_property views of the buffers, which a copy must remake rather than copy
CACHED_VIEWS = (
    "_state_buffers",
    "_layer_views",
    "_flat_runs",
    "_own_buffers",
    "_own_memory_owners",
    "_layer_segments",
    "_last_flat_pieces",
)

GradsLike = FlatParams | Mapping[str, np.ndarray] | np.ndarray
# What one kernel call updates: (index of its group, its layers' names, the kernel segment,
# the block bounds of its gradient for the clipping norm)
Piece = tuple[int, tuple[str, ...], Segment, np.ndarray]


class Optimizer:
    """Base class: subclasses set ``kernel`` and ``state_names`` and implement
    ``hyperparameters``, ``_set_hyperparameters`` (which also sets ``max_grad_norm``) and
    ``_scalars``."""

    kernel: ElementwiseKernel  # set by each algorithm, on the class or (options) per instance
    state_names: tuple[str, ...] = ()
    group_options: ClassVar[tuple[str, ...]] = ("lr", "weight_decay")  # what a Group may set
    max_grad_norm: float | None = None  # clip by global norm when set
    # the gradient buffer of the last flat step and its checked pieces (none yet)
    _last_flat_pieces: tuple[np.ndarray | None, list[Piece]] = (None, [])

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
        groups: Sequence[Group | Mapping[str, Any]] | None = None,
    ) -> None:
        self.nonfinite = NonFiniteGuard(nonfinite, max_consecutive_skips)
        self.last_grad_norm: float | None = None  # before clipping, of the last step's grads
        self._grad_scale = 1.0
        names = _layer_names(params)
        # groups[0] is the default group: the layers no other group selected
        self.groups: list[ResolvedGroup] = resolve_groups(groups, names, self.group_options, 1)
        self.params: FlatParams = _as_flat_params(params, layer_order(self.groups, names))
        self.layout = self.params.layout
        self.state: dict[str, FlatParams] = {
            name: self.params.zeros_like(prefix="") for name in self.state_names
        }
        self.t: int = 0

    @property
    def lr(self) -> float:
        """The learning rate of the next step. Set it to a float, or to a schedule (a
        callable of the step number ``t``, see :mod:`fastoptim.schedules`) that each step
        then calls; either is checked at once, and never recompiles anything (the rate is
        a scalar argument of the kernel)."""
        return self._lr if self.schedule is None else float(self.schedule(self.t + 1))

    @lr.setter
    def lr(self, value: Any) -> None:
        t = getattr(self, "t", 0) + 1
        value = check_lr_or_schedule(value, t)
        self.schedule: Callable[[int], float] | None = value if callable(value) else None
        self._lr = check_learning_rate(value(t), f"lr({t})") if callable(value) else value

    def _lr_setting(self, value: Any = None) -> Any:
        """What state_dict saves for a learning rate (default: ``lr``): the rate, or a
        describable schedule's description (any other callable: its rate for the next step)."""
        if value is None:
            value = self._lr if self.schedule is None else self.schedule
        if isinstance(value, schedules.Schedule):
            return value.describe()
        return float(value(self.t + 1)) if callable(value) else value

    # -- to be provided by each algorithm -------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The hyper-parameters as plain Python values, by their argument names."""
        raise NotImplementedError

    def _set_hyperparameters(self, *args: Any, **hyperparameters: Any) -> None:
        """Validate and set every hyper-parameter (raises before setting any)."""
        raise NotImplementedError

    def _scalars(self, t: int, lr: float, weight_decay: float) -> tuple[float, ...]:
        """The kernel's scalar arguments for step ``t`` of a group with this learning rate
        and weight decay, as Python floats."""
        raise NotImplementedError

    # -- stepping ---------------------------------------------------------------------------
    def step(self, grads: GradsLike, *, grad_scale: float = 1.0) -> None:
        """Apply one update with ``grads`` and advance ``t`` by one.

        ``grads`` is a FlatParams with this layout (one kernel call over the whole buffer,
        or one per group), a flat array of ``layout.size`` elements, or a dict keyed like
        the parameters (``'W1'``) or the course way (``'dW1'``), updated layer by layer.
        Everything is checked before anything changes. Gradients holding NaN or Inf are
        handled as the ``nonfinite`` policy says (by default the step is skipped; see
        NonFiniteGuard). Frozen layers are neither read nor written.

        ``grad_scale`` (keyword-only, a finite number > 0) multiplies every gradient inside
        the kernel, before clipping and weight decay: ``1 / scale`` unscales the gradients
        of a loss multiplied by ``scale`` (torch's GradScaler) without another pass.
        """
        t = self.t + 1
        if grad_scale != 1.0:  # the default needs no check
            grad_scale = check_grad_scale(grad_scale)
        rates = self._learning_rates(t)  # checked before anything changes
        pieces = self._pieces(grads)
        flat_grads = [segment[1] for _, _, segment, _ in pieces]
        known_finite = None
        if self.max_grad_norm is not None:
            # torch.nn.utils.clip_grad_norm_'s rule; the scale joins the kernel's gradient
            # sign, so the gradients are read once here and once in the update
            norm_pieces = [(segment[1], bounds) for _, _, segment, bounds in pieces]
            norm = kernels.norm.global_norm(norm_pieces, self._norm_scratch) * grad_scale
            self.last_grad_norm = norm
            known_finite = math.isfinite(norm)
            grad_scale *= min(1.0, self.max_grad_norm / (norm + 1e-6))
        if not self.nonfinite.allows(
            flat_grads, partial(_offending, self.layout, pieces), known_finite
        ):
            return
        self._apply(pieces, t, rates, grad_scale)

    def _apply(self, pieces: list[Piece], t: int, rates: list[float], grad_scale: float) -> None:
        """The update itself, on checked pieces, with every gradient scaled by
        ``grad_scale`` (clipping; the mean over ranks of a sharded step)."""
        self._grad_scale = grad_scale
        self.kernel.run_pieces(pieces, self._scalar_table(t, rates))
        self.t = t

    def update_layer(self, name: str, grad: np.ndarray, t: int, grad_scale: float = 1.0) -> None:
        """One kernel call that updates layer ``name`` alone, as step ``t`` of that layer,
        with the 1-D gradient ``grad`` (its size, this dtype) times ``grad_scale``.

        The stage for callers whose layers keep step counts of their own (torch's
        per-parameter ``state['step']``): no checks, no NaN/Inf policy, no clipping, and
        ``self.t`` is left alone. The caller has checked ``grad``; ``t`` >= 1.
        """
        group, param, views = self._layer_segments[name]
        self._grad_scale = grad_scale
        scalars = self._scalar_table(t, self._learning_rates(t))[group]
        self.kernel.variant_for(param)(param, grad, *views, *scalars)

    @cached_property
    def _layer_segments(self) -> dict[str, tuple[int, np.ndarray, Segment]]:
        """Per updated layer: its group, its 1-D parameter view and its state views in the
        kernel's order."""
        return {
            name: (group, flats[0], flats[1:] if kernel_states is None else kernel_states)
            for group, name, _, flats, kernel_states, _ in self._layer_views
        }

    def _learning_rates(self, t: int) -> list[float]:
        """Each group's learning rate for step ``t``, schedules called and checked."""
        default = self._lr
        if self.schedule is not None:
            default = check_learning_rate(self.schedule(t), f"lr({t})")
        if len(self.groups) == 1:  # the common case, on every step's path
            return [default]
        rates = [default]
        for index, group in enumerate(self.groups[1:]):
            if group.lr is None:
                rates.append(default)
            elif callable(group.lr):
                rates.append(check_learning_rate(group.lr(t), f"groups[{index}].lr({t})"))
            else:
                rates.append(group.lr)
        return rates

    def _scalar_table(self, t: int, rates: list[float]) -> list[tuple[float, ...]]:
        """The kernel scalars of every group (empty for a frozen or empty group)."""
        default_decay = getattr(self, "weight_decay", 0.0)
        if len(self.groups) == 1:
            return [self._scalars(t, rates[0], default_decay)]
        table: list[tuple[float, ...]] = []
        for group, lr in zip(self.groups, rates, strict=True):
            if group.frozen or not group.names:
                table.append(())
                continue
            decay = default_decay if group.weight_decay is None else group.weight_decay
            table.append(self._scalars(t, lr, decay))
        return table

    def _pieces(self, grads: GradsLike) -> list[Piece]:
        if isinstance(grads, FlatParams):
            check_same_layout(grads.layout, self.layout, "grads")
            return self._flat_pieces(grads.buffer)
        if isinstance(grads, np.ndarray):
            return self._flat_pieces(self._flat_grad(grads))
        if isinstance(grads, Mapping):
            return self._layer_pieces(grads)
        raise TypeError(
            f"grads must be a FlatParams, a dict of arrays or a flat array; got {type(grads).__name__}"
        )

    def _flat_pieces(self, grad: np.ndarray) -> list[Piece]:
        self._check_buffers_writable()
        last_grad, last_pieces = self._last_flat_pieces
        if grad is last_grad:  # a training loop passes the same gradient buffer every step
            return last_pieces
        # our own buffers never overlap one another: only the gradient can overlap them
        if id(memory_owner(grad)) in self._own_memory_owners:
            buffers = (self.params.buffer, grad, *self._state_buffers)
            check_no_shared_memory(buffers, partial(self._label, None, ""))
        pieces = [
            (group, names, (views[0], grad if whole else grad[start:stop], *views[1:]), bounds)
            for group, names, start, stop, whole, views, bounds in self._flat_runs
        ]
        self._last_flat_pieces = (grad, pieces)  # checked once: neither array can move
        return pieces

    def _check_buffers_writable(self) -> None:
        # The buffers are shared with the caller (opt.params, opt.state), who may have made
        # one read-only; the per-layer views made earlier would not know.
        for buffer in self._own_buffers:
            if not buffer.flags.writeable:
                break
        else:
            return
        check_writable(self.params.buffer, "params")  # raises, naming the buffer
        for key, state in self.state.items():
            check_writable(state.buffer, f"state[{key!r}]")

    def _flat_grad(self, grad: np.ndarray) -> np.ndarray:
        if grad.shape != (self.layout.size,):
            raise ValueError(
                f"a flat grads array must have shape ({self.layout.size},) to match the "
                f"parameter buffer; got shape {grad.shape}"
            )
        if grad.dtype != self.layout.dtype:
            raise TypeError(
                f"grads is {grad.dtype} but the parameters are {self.layout.dtype}; "
                f"convert it with .astype(np.{self.layout.dtype.name})."
            )
        return np.ascontiguousarray(grad)

    def _layer_pieces(self, grads: Mapping[str, np.ndarray]) -> list[Piece]:
        prefix = _grad_key_prefix(grads, self._updated_names, self.layout.names)
        self._check_buffers_writable()
        pieces: list[Piece] = []
        for group, name, param, flats, kernel_states, bounds in self._layer_views:
            describe = partial(self._label, name, prefix)
            grad = layer_grad(grads[prefix + name], param, describe)
            segment = (flats[0], grad, *flats[1:])
            check_no_shared_memory(segment, describe)
            if kernel_states is not None:
                segment = (flats[0], grad, *kernel_states)
            pieces.append((group, (name,), segment, bounds))
        return pieces

    def _kernel_state_order(self) -> tuple[str | None, ...]:
        """The state buffers in the order the kernel takes them; None where the kernel gets
        a zero-length place-holder for a buffer these options do not keep (RMSprop)."""
        return tuple(self.state)

    def _kernel_states(self, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        absent = np.empty(0, dtype=self.layout.dtype)
        return tuple(absent if key is None else arrays[key] for key in self._kernel_state_order())

    @cached_property
    def _updated_names(self) -> tuple[str, ...]:
        """The layers a step updates, in layout order: all but the frozen ones."""
        frozen = {name for group in self.groups if group.frozen for name in group.names}
        return (
            tuple(name for name in self.layout.names if name not in frozen)
            if frozen
            else self.layout.names
        )

    @cached_property
    def _norm_scratch(self) -> np.ndarray:
        # room for the block sums of every layer
        n_blocks = sum(kernels.norm_blocks(size) for size in self.layout.sizes)
        return np.empty(max(1, n_blocks), dtype=np.float64)

    @cached_property
    def _state_buffers(self) -> tuple[np.ndarray, ...]:
        return tuple(state.buffer for state in self.state.values())

    @cached_property
    def _own_buffers(self) -> tuple[np.ndarray, ...]:
        return (self.params.buffer, *self._state_buffers)

    @cached_property
    def _own_memory_owners(self) -> frozenset[int]:
        return frozenset(id(memory_owner(buffer)) for buffer in self._own_buffers)

    @cached_property
    def _flat_runs(self) -> list[tuple[int, tuple[str, ...], int, int, bool, Segment, np.ndarray]]:
        """Per run of neighbouring layers of one group (frozen ones left out): its group,
        layer names, ``start:stop`` in the buffer, whether that is the whole buffer, views
        ``(param, *kernel states)`` of that range and its layers' norm block bounds. Made
        once: the buffers never move."""
        group_of = {name: i for i, group in enumerate(self.groups) for name in group.names}
        runs: list[list[Any]] = []
        for name in self.layout.names:
            group = group_of[name]
            span = self.layout.span(name)
            if self.groups[group].frozen:
                continue
            if runs and runs[-1][0] == group and runs[-1][3] == span.start:
                runs[-1][1].append(name)
                runs[-1][3] = span.stop
            else:
                runs.append([group, [name], span.start, span.stop])
        buffers = {key: state.buffer for key, state in self.state.items()}
        made = []
        for group, names, start, stop in runs:
            in_range = {key: buffer[start:stop] for key, buffer in buffers.items()}
            views = (self.params.buffer[start:stop], *self._kernel_states(in_range))
            whole = start == 0 and stop == self.layout.size
            sizes = [self.layout.sizes[self.layout.index(name)] for name in names]
            bounds = kernels.norm_block_bounds(sizes)
            made.append((group, tuple(names), start, stop, whole, views, bounds))
        return made

    @cached_property
    def _layer_views(
        self,
    ) -> list[tuple[int, str, np.ndarray, Segment, Segment | None, np.ndarray]]:
        """Per updated layer: its group, name, parameter view, 1-D views ``(param, *state)``
        of the buffers, the state views in the kernel's order when that differs, and its
        norm block bounds."""
        group_of = {name: i for i, group in enumerate(self.groups) for name in group.names}
        reordered = self._kernel_state_order() != tuple(self.state)
        layers = []
        for name in self.layout.names:
            if self.groups[group_of[name]].frozen:
                continue
            param = self.params[self.params.prefix + name]
            states = {key: state[name].ravel() for key, state in self.state.items()}
            kernel_states = self._kernel_states(states) if reordered else None
            flats = (param.ravel(), *states.values())
            bounds = kernels.norm_block_bounds([param.size])
            layers.append((group_of[name], name, param, flats, kernel_states, bounds))
        return layers

    def __getstate__(self) -> dict[str, Any]:
        # A copy or pickle must remake its views of its own buffers on first use: a copied
        # view would be an independent array.
        return {k: v for k, v in self.__dict__.items() if k not in CACHED_VIEWS}

    def _forget_views(self) -> None:
        """Drop the cached views of the buffers (remade on first use)."""
        for cached in CACHED_VIEWS:
            self.__dict__.pop(cached, None)

    def _label(self, name: str | None, grad_prefix: str, position: int) -> str:
        """How messages name array ``position`` of layer ``name`` (None: the whole buffer)."""
        layer = "" if name is None else f"[{name!r}]"
        if position == 0:
            return f"params{layer}"
        if position == 1:
            return "grads" if name is None else f"grads[{grad_prefix + name!r}]"
        return f"state[{list(self.state)[position - 2]!r}]{layer}"

    # -- saving and restoring ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training bit-identically, as copies.

        Keys: ``algorithm``, ``hyperparameters``, ``groups`` (each group's layers and
        settings, without the default group), ``t``, ``layout`` (names, shapes, dtype) and
        ``state`` (for each state buffer, a dict of arrays by layer name).
        """
        return {
            "algorithm": type(self).__name__,
            "hyperparameters": self.hyperparameters(),
            "groups": self.group_settings(),
            "t": self.t,
            "layout": self.layout.describe(),
            "state": {
                key: {name: np.array(state[name]) for name in self.layout.names}
                for key, state in self.state.items()
            },
        }

    def group_settings(self) -> list[dict[str, Any]]:
        """Each group's layers and settings as plain values (the default group left out)."""
        return [group.describe(self._lr_setting) for group in self.groups[1:]]

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` saved. Everything is checked before anything changes."""
        _check_state_dict(state_dict, type(self).__name__, self.layout.describe(), self.state_names)
        expected = sorted(self.hyperparameters())
        if (
            not isinstance(state_dict["hyperparameters"], Mapping)
            or sorted(state_dict["hyperparameters"]) != expected
        ):
            raise KeyError(
                f"state_dict['hyperparameters'] must hold exactly {expected}; "
                f"{_holds(state_dict['hyperparameters'], expected)}"
            )
        t = check_step(state_dict["t"], "state_dict['t']", first=0)
        check_lr_or_schedule(state_dict["hyperparameters"]["lr"], t + 1)  # at the step to come
        groups = restored_groups(state_dict.get("groups", []), self.groups, t + 1)
        arrays = {}
        for key in self.state_names:
            saved = state_dict["state"][key]
            for name in self.layout.names:
                label = f"state_dict['state'][{key!r}][{name!r}]"
                arrays[key, name] = _checked_state_array(saved[name], label, self.state[key][name])
        self._set_hyperparameters(**state_dict["hyperparameters"])  # validates, then sets
        self.groups = groups
        for (key, name), array in arrays.items():
            np.copyto(self.state[key][name], array)
        self.t = t

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({self.layout}, {hp}, t={self.t})"


def _offending(layout: Layout, pieces: list[Piece]) -> list[str]:
    """The layers whose gradients hold NaN or Inf (a piece is one layer or a run of them)."""
    offending = []
    for _, names, segment, _ in pieces:
        start = 0
        for name in names:
            size = layout.sizes[layout.index(name)]
            if not np.isfinite(segment[1][start : start + size]).all():
                offending.append(name)
            start += size
    return offending


def _layer_names(params: object) -> list[str]:
    if isinstance(params, FlatParams):
        return list(params.layout.names)
    if isinstance(params, MutableMapping):
        return list(params)
    raise TypeError(f"params must be a FlatParams or a dict of arrays; got {type(params).__name__}")


def _as_flat_params(params: object, order: list[str]) -> FlatParams:
    """``params`` itself if a FlatParams; a plain dict flattened with its layers in ``order``
    (group by group) and its entries rebound to the live views."""
    if isinstance(params, FlatParams):
        return params
    assert isinstance(params, MutableMapping)  # _layer_names checked
    flat = flatten({name: params[name] for name in order})
    for key in params:  # the caller's dict now shows the live views
        params[key] = flat[key]
    return flat


def _grad_key_prefix(grads: Mapping, names: tuple[str, ...], allowed: tuple[str, ...]) -> str:
    """'' when ``grads`` is keyed like the parameters, 'd' when keyed the course way.

    Every layer of ``names`` needs a gradient; those of ``allowed`` (frozen layers too) may
    have one."""
    for prefix in ("", "d"):
        expected = {prefix + name for name in names}
        if expected <= grads.keys():
            permitted = expected if names is allowed else {prefix + name for name in allowed}
            extra = [key for key in grads if key not in permitted]
            if extra:
                raise KeyError(
                    f"grads has keys that are not gradients of any parameter: {extra[:8]}; "
                    "pass only the parameters' gradients."
                )
            return prefix
    missing = [name for name in names if name not in grads and "d" + name not in grads]
    raise KeyError(
        f"grads is missing the gradient of {missing[:8]}; key gradients like the parameters "
        "('W1') or the course way ('dW1'), one for every parameter."
    )


def _check_state_dict(state_dict, algorithm, layout, state_names) -> None:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a dict; got {type(state_dict).__name__}")
    missing = {"algorithm", "hyperparameters", "t", "layout", "state"} - state_dict.keys()
    if missing:
        raise KeyError(f"state_dict is missing {sorted(missing)}; pass what state_dict() returned")
    if state_dict["algorithm"] != algorithm:
        raise ValueError(
            f"state_dict was saved by {state_dict['algorithm']!r}; this optimizer is {algorithm!r}"
        )
    difference = layers_difference(state_dict["layout"], layout)
    if difference is not None:
        raise ValueError(
            f"state_dict was saved for other parameters: {difference}; load it into an "
            "optimizer over the same parameters"
        )
    state = state_dict["state"]
    if not isinstance(state, Mapping) or set(state) != set(state_names):
        raise KeyError(
            f"state_dict['state'] must hold exactly {list(state_names)}; "
            f"{_holds(state, state_names)}"
        )
    for key in state_names:
        if not isinstance(state[key], Mapping) or set(state[key]) != set(layout["names"]):
            raise KeyError(
                f"state_dict['state'][{key!r}] must hold one array per layer; "
                f"{_holds(state[key], layout['names'])}"
            )


def _holds(found: object, expected: Sequence[str]) -> str:
    """What a saved mapping holds against what it should: the first missing and extra keys."""
    if not isinstance(found, Mapping):
        return f"it is a {type(found).__name__}"
    missing = [key for key in expected if key not in found]
    extra = [key for key in found if key not in expected]
    parts = ([f"it lacks {missing[:4]}"] if missing else []) + (
        [f"it has {extra[:4]} too"] if extra else []
    )
    return " and ".join(parts)


def _checked_state_array(array: object, label: str, target: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != target.shape or array.dtype != target.dtype:
        raise ValueError(
            f"{label} is a {array.dtype} array of shape {array.shape}; "
            f"expected {target.dtype} of shape {target.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{label} holds NaN or Inf; this state cannot continue training")
    return array
