"""Optimizer: the shared machinery of every fastoptim optimizer class.

Owns the flat parameters, one flat buffer per state, and the step counter; turns whatever
gradients ``step`` receives into validated pieces; runs the algorithm's kernel; saves and
restores everything through ``state_dict``. What an algorithm is comes from its
``Declaration`` (declaration.py): a class is ``class Adam(Optimizer): declaration = ADAM``.

The stages of a step are public, for callers that run a step their own way
(fastoptim.torch, fastoptim.distributed, the bench): ``plan`` (gradients in any form ->
checked ``Piece`` records), ``learning_rates`` and ``scalar_table`` (the kernel's scalars
of each group), ``gradient_norm``, ``offending_layers``, ``apply`` (the update itself) and
``update_layer`` (one layer at a step count of its own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import textwrap
from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping, Sequence
from functools import cached_property, partial
from typing import Any, ClassVar

import numpy as np

from fastoptim import kernels, schedules
from fastoptim.flat import FlatParams, Layout, flatten
from fastoptim.kernels import UpdateLoop, new_record
from fastoptim.kernels.interpolation import add_into, interpolate, swap
from fastoptim.optim import blockwise, state_dtypes
from fastoptim.optim.blockwise import Int8Storage
from fastoptim.optim.buffer_views import Buffers, flat_runs, layer_views
from fastoptim.optim.declaration import Declaration, Settings
from fastoptim.optim.groups import (
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
from fastoptim.optim.saved_state import check_state_dict, checked_scales, checked_state_array, holds
from fastoptim.optim.segments import (
    check_no_shared_memory,
    check_same_layout,
    check_writable,
    grad_key_prefix,
    layer_grad,
    memory_owner,
)
from fastoptim.optim.step_records import FlatRun, LayerView, Piece

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
# values the scalar function takes beside its own arguments (see ``scalar_table``)
Carried = Mapping[str, float] | Sequence[Mapping[str, float]]

# The keyword-only options every optimizer class takes after its hyper-parameters
OWN_OPTIONS = [
    inspect.Parameter("nonfinite", inspect.Parameter.KEYWORD_ONLY, default="skip"),
    inspect.Parameter("max_consecutive_skips", inspect.Parameter.KEYWORD_ONLY, default=10),
    inspect.Parameter("groups", inspect.Parameter.KEYWORD_ONLY, default=None),
]


def _setting(name: str) -> property:
    """``opt.<name>``: a hyper-parameter read from the settings; set through
    ``set_hyperparameters`` (checked)."""

    def get(self: Optimizer) -> Any:
        return getattr(self.settings, name)

    def set_(self: Optimizer, value: Any) -> None:
        self.set_hyperparameters(**{name: value})

    return property(get, set_, doc=f"The hyper-parameter ``{name}`` (checked when set).")


# every optimizer class by name (a state_dict's 'algorithm')
OPTIMIZER_CLASSES: dict[str, type[Optimizer]] = {}


class Optimizer:
    """Base class of the optimizer classes: a subclass sets ``declaration``, and its
    signature, docstring parameters (in place of ``{parameters}``) and one property per
    hyper-parameter are made from it."""

    declaration: ClassVar[Declaration]
    # the cached_property views of the buffers (an algorithm with passes of its own adds its)
    cached_views: ClassVar[tuple[str, ...]] = CACHED_VIEWS
    # the gradient buffer of the last flat step and its checked pieces (none yet)
    _last_flat_pieces: tuple[np.ndarray | None, list[Piece], list[np.ndarray]] = (None, [], [])
    _ema_swapped = False  # inside ``ema_weights()``: the parameters hold the average

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declaration = cls.__dict__.get("declaration")
        if declaration is None:
            return
        OPTIMIZER_CLASSES[cls.__name__] = cls
        cls.__signature__ = declaration.signature(OWN_OPTIONS)  # type: ignore[attr-defined]
        if cls.__doc__ and "{parameters}" in cls.__doc__:
            section = textwrap.indent(declaration.parameters_doc(), "    ").lstrip()
            cls.__doc__ = cls.__doc__.replace("{parameters}", section)
        for hp in declaration.every_hyperparameter[1:]:
            setattr(cls, hp.name, _setting(hp.name))

    def __init__(self, params: FlatParams | MutableMapping[str, np.ndarray], *args, **kwargs):
        _refuse_storage_options_it_lacks(self.declaration, kwargs)
        signature = type(self).__signature__  # type: ignore[attr-defined]
        try:
            arguments = signature.bind(params, *args, **kwargs)
        except TypeError as error:  # say what it does take
            takes = ", ".join(name for name in signature.parameters if name != "params")
            raise TypeError(f"{type(self).__name__}: {error}; it takes {takes}") from None
        arguments.apply_defaults()
        values = arguments.arguments
        self.nonfinite = NonFiniteGuard(values["nonfinite"], values["max_consecutive_skips"])
        self.t: int = 0
        # the global index of this optimizer's first element: a shard's start in the whole
        # buffer (bfloat16 state's rounding bits follow the global index). Set it before
        # the first step.
        self.first_index = 0
        self.lr = values["lr"]  # checked by the setter
        self._set_settings(
            self._resolved(self.declaration.checked_settings(values), _params_dtype(params))
        )
        self._set_kernel()
        self._state_order = self.declaration.states(self.settings)
        self.state_names = self.declaration.state_names(self.settings)
        self.last_grad_norm: float | None = None  # before clipping, of the last step's grads
        names = _layer_names(params)
        # groups[0] is the default group: the layers no other group selected
        self.groups: list[ResolvedGroup] = resolve_groups(
            values["groups"], names, self.declaration.group_options, 1
        )
        self.params: FlatParams = _as_flat_params(params, layer_order(self.groups, names))
        self.layout = self.params.layout
        # the weight EMA (ema_decay): laid out like the parameters, moved in the step's pass
        self.ema: FlatParams | None = None
        # how many steps have moved it (``t`` here; fastoptim.torch counts its own steps,
        # whose layers keep step counts of their own): the first one copies the weights
        self.ema_steps = 0
        if self.settings.ema_decay is not None:
            self.ema = self.params.zeros_like()
            self.ema.buffer[:] = self.params.buffer
        # gradient accumulation (accumulation_steps > 1): the sum of the gradients waiting
        # for the update, and how many there are
        self.accumulated: FlatParams | None = None
        self.micro_steps = 0
        if self.settings.accumulation_steps > 1:
            self.accumulated = self.params.zeros_like()
        # int8 state: the codes are self.state; the scales and the small layers' float32
        # state are here (None for every other state dtype)
        self.int8: Int8Storage | None = None
        initial = self.declaration.initial_state(self.settings)
        if self.storage == "int8":
            self.set_quantized_layers(None)
            return
        stored = state_dtypes.stored_dtype(self.state_dtype)
        self.state = {
            name: FlatParams(self.layout, stored_dtype=stored) for name in self.state_names
        }
        for name, value in initial.items():
            self.state[name].buffer.fill(state_dtypes.stored_values(value, self.state_dtype))

    def set_quantized_layers(self, names: Collection[str] | None) -> None:
        """int8 state: quantize exactly the layers ``names``, whatever their size (a shard
        quantizes its parts of the whole model's quantized layers); None: the layers of at
        least 4096 elements. The state starts again from its initial values."""
        if self.storage != "int8":
            raise ValueError(f"only int8 state quantizes layers; this one is {self.state_dtype}")
        order = self._state_order
        block = blockwise.block_elements(self.settings.block_size)
        assert self.kernel is not None  # int8 state is for elementwise kernels only
        self.int8 = Int8Storage(
            self.layout, self.state_names, order, self.kernel.unsigned, block, quantized=names
        )
        self.state = self.int8.codes
        for name, value in self.declaration.initial_state(self.settings).items():
            self.int8.fill(name, value)
        for cached in self.cached_views:
            self.__dict__.pop(cached, None)

    def stored_buffers(self) -> dict[str, np.ndarray]:
        """Every buffer of the state as stored, by the name a checkpoint gives it:
        ``state.<key>`` (laid out like the parameters: values, bfloat16 or int8 codes) and,
        for int8 state, ``scales.<key>`` (the quantized layers' block scales in layout
        order) and ``small.<key>`` (the float32 state of the other layers); ``ema``, the
        weight EMA, and ``accumulated``, the sum of the gradients waiting, where there are
        those."""
        buffers = {f"state.{key}": state.buffer for key, state in self.state.items()}
        if self.ema is not None:
            buffers["ema"] = self.ema.buffer
        if self.accumulated is not None:
            buffers["accumulated"] = self.accumulated.buffer
        if self.int8 is not None:
            buffers.update({f"scales.{key}": v for key, v in self.int8.scales.items()})
            buffers.update({f"small.{key}": v.buffer for key, v in self.int8.small.items()})
        return buffers

    def _set_kernel(self) -> None:
        """The kernel loops of the settings: ``kernel`` the state's own storage's, and the
        float loop beside it (the small layers of int8 state)."""
        self.kernel: UpdateLoop | None
        self._loops: dict[str, UpdateLoop | None]
        if self.declaration.kernel is None:  # passes of its own (Adafactor)
            self.kernel, self._loops, self._rounding_streams = None, {"float": None}, 0
            return
        update = self.declaration.kernel(self.settings)
        # the loops that move the weight EMA, and add the accumulated gradients, too
        extras = (self.settings.ema_decay is not None, self.settings.accumulation_steps > 1)
        kernel = update.stored_as(self.storage, *extras)
        self.kernel = kernel
        self._loops = {"float": update.stored_as("float", *extras), self.storage: kernel}
        # how many random streams a step's kernel takes (bfloat16 state), else 0
        self._rounding_streams = kernel.n_random_streams

    def _resolved(self, settings: Settings, params_dtype: np.dtype | None = None) -> Settings:
        """``settings`` with ``state_dtype=None`` standing for the parameters' dtype, and
        the pair checked (raises, listing what works)."""
        if not hasattr(settings, "state_dtype"):
            return settings
        dtype = self.layout.dtype if params_dtype is None else params_dtype
        state_dtype = state_dtypes.resolved_state_dtype(
            settings.state_dtype, dtype, self.declaration.name
        )
        state_dtypes.check_block_size_applies(
            settings.block_size, state_dtype, self.declaration.name
        )
        return dataclasses.replace(settings, state_dtype=state_dtype)

    @property
    def state_dtype(self) -> str:
        """How the state is stored (``state_dtype=``): the parameters' dtype by default."""
        return getattr(self.settings, "state_dtype", None) or self.layout.dtype.name

    @property
    def storage(self) -> str:
        """The kernel loop's storage of this state dtype ('float', 'bfloat16', 'int8')."""
        return state_dtypes.storage(getattr(self.settings, "state_dtype", None) or "float32")

    @property
    def state_nbytes(self) -> int:
        """The bytes the state buffers hold (8 per parameter for Adam's float32 state, 4
        for bfloat16, about 2.03 for int8: codes, scales and the small layers' float32)."""
        if self.int8 is not None:
            return self.int8.nbytes
        return sum(state.buffer.nbytes for state in self.state.values())

    # -- hyper-parameters -------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate of the next step. Set it to a float, or to a schedule (a
        callable of the step number ``t``, see :mod:`fastoptim.schedules`) that each step
        then calls; either is checked at once, and never recompiles anything (the rate is
        a scalar argument of the kernel)."""
        return self._lr if self.schedule is None else float(self.schedule(self.t + 1))

    @lr.setter
    def lr(self, value: Any) -> None:
        t = self.t + 1
        value = check_lr_or_schedule(value, t)
        self.schedule: Callable[[int], float] | None = value if callable(value) else None
        self._lr = check_learning_rate(value(t), f"lr({t})") if callable(value) else value

    def _set_settings(self, settings: Settings) -> None:
        """Take checked settings (a plain attribute: read on every step's path)."""
        self.settings = settings
        self._decay = getattr(settings, "weight_decay", 0.0)  # the default group's

    @property
    def lr_as_set(self) -> Any:
        """The learning rate as it was set: the schedule, or the rate."""
        return self._lr if self.schedule is None else self.schedule

    def _lr_setting(self, value: Any = None) -> Any:
        """What state_dict saves for a learning rate (default: ``lr``): the rate, or a
        describable schedule's description (any other callable: its rate for the next step)."""
        if value is None:
            value = self.lr_as_set
        if isinstance(value, schedules.Schedule):
            return value.describe()
        return float(value(self.t + 1)) if callable(value) else value

    def hyperparameters(self) -> dict[str, Any]:
        """The hyper-parameters as plain Python values, by their argument names."""
        return {"lr": self._lr_setting(), **dataclasses.asdict(self.settings)}

    def set_hyperparameters(self, **values: Any) -> None:
        """Set hyper-parameters by name (the others keep their values). Every value is
        checked, and the combination, before any is set. Those that decide which state
        buffers exist (``declaration.fixed_by()``) cannot change."""
        declaration = self.declaration
        unknown = [name for name in values if name not in declaration.defaults()]
        if unknown:
            raise TypeError(
                f"{declaration.name} has no hyper-parameters {unknown}; it has "
                f"{list(declaration.defaults())}"
            )
        merged = {**dataclasses.asdict(self.settings), "lr": self.lr_as_set, **values}
        lr = check_lr_or_schedule(merged["lr"], self.t + 1)
        settings = self._resolved(declaration.checked_settings(merged))
        if declaration.states(settings) != declaration.states(self.settings) or _storage(
            settings
        ) != _storage(self.settings):
            fixed = [  # those asked to change (a value may stand for the same state)
                name
                for name in declaration.fixed_by()
                if getattr(settings, name) != getattr(self.settings, name)
            ]
            now = ", ".join(f"{name}={getattr(self.settings, name)!r}" for name in fixed)
            raise ValueError(
                f"{' and '.join(fixed)} {'decides' if len(fixed) == 1 else 'decide'} which "
                f"state buffers exist, so {'it' if len(fixed) == 1 else 'they'} cannot change "
                f"(this optimizer: {now}); construct a new optimizer with the new value"
            )
        if settings.accumulation_steps != self.settings.accumulation_steps:
            raise ValueError(
                "accumulation_steps decides whether the accumulation buffer exists, so it "
                f"cannot change (this optimizer: accumulation_steps="
                f"{self.settings.accumulation_steps}); construct a new optimizer with the "
                "new value"
            )
        if (settings.ema_decay is None) != (self.settings.ema_decay is None):
            raise ValueError(
                f"ema_decay decides whether the weight EMA buffer exists, so it cannot change "
                f"between None and a number (this optimizer: ema_decay="
                f"{self.settings.ema_decay!r}); construct a new optimizer with the new value"
            )
        self.lr = lr
        self._set_settings(settings)

    # -- the weight EMA -----------------------------------------------------------------------
    @contextlib.contextmanager
    def ema_weights(self) -> Iterator[None]:
        """``with opt.ema_weights(): evaluate(params)``: the parameters hold the weight EMA
        inside the block (``opt.ema`` the training weights), swapped in place in one pass
        and back on leaving; a step inside the block raises."""
        if self.ema is None:
            raise ValueError(
                f"this {type(self).__name__} keeps no weight EMA; construct it with "
                "ema_decay=0.999 (or another decay)"
            )
        if self._ema_swapped:
            raise RuntimeError("the EMA weights are in the parameters already (nested block)")
        self._swap_ema()
        try:
            yield
        finally:
            self._swap_ema()

    def ema_weight(self) -> float:
        """How far the next step moves the weight EMA towards the new weights: all the way
        on the first (a copy, as swa_utils' AveragedModel), then ``1 - ema_decay``."""
        decay = self.settings.ema_decay
        return 1.0 if self.ema_steps == 0 or decay is None else 1.0 - decay

    def move_ema_of(self, names: Sequence[str], param: np.ndarray) -> None:
        """The weight EMA of neighbouring layers ``names`` (their parameters ``param``,
        1-D) moved towards them in a pass of its own (3 elements of traffic): for the
        algorithms whose steps are passes of their own (Adafactor, LAMB). Does not count
        the step (``ema_steps``)."""
        if self.ema is None:
            return
        start = self.layout.span(names[0]).start
        average = self.ema.buffer[start : start + param.size]
        weight = self.ema_weight()
        interpolate.variant_for(param)(average, param, weight, 1.0 - weight)

    @property
    def ema_in_params(self) -> bool:
        """Whether the parameters hold the weight EMA now (inside ``ema_weights()``)."""
        return self._ema_swapped

    def _swap_ema(self) -> None:
        assert self.ema is not None
        params, ema = self.params.buffer, self.ema.buffer
        swap.variant_for(params)(params, ema)
        self._ema_swapped = not self._ema_swapped

    # -- the stages of a step -----------------------------------------------------------------
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

        With ``accumulation_steps=k``, only every k-th call updates (with the mean of the
        k gradients) and advances ``t``; the calls before it add their gradients into a
        buffer (``micro_steps`` counts them). ``grad_scale`` goes with the k-th call.
        """
        t = self.t + 1
        if self._ema_swapped:
            raise RuntimeError(
                "the parameters hold the weight EMA (inside opt.ema_weights()); step after "
                "the block"
            )
        if grad_scale != 1.0:  # the default needs no check
            grad_scale = check_grad_scale(grad_scale)
        steps = self.settings.accumulation_steps
        if steps > 1 and self.micro_steps < steps - 1:  # not the last of an accumulation
            self._accumulate(grads, grad_scale)
            return
        rates = self.learning_rates(t)  # checked before anything changes
        pieces = self.plan(grads)
        known_finite = None
        max_norm = self.settings.max_grad_norm
        read_twice = False
        if steps > 1:
            last = self._last_of_accumulation(pieces, grad_scale, max_norm)
            if last is None:
                return
            pieces, grad_scale, read_twice = last
        if max_norm is not None:
            # torch.nn.utils.clip_grad_norm_'s rule; the scale joins the kernel's gradient
            # sign, so the gradients are read once here and once in the update
            norm = self.gradient_norm(pieces) * grad_scale
            self.last_grad_norm = norm
            known_finite = math.isfinite(norm)
            grad_scale *= min(1.0, max_norm / (norm + 1e-6))
        if read_twice:
            grad_scale /= 2  # see _last_of_accumulation
        if self.nonfinite.policy != "ignore" and not self._allowed(pieces, known_finite):
            return
        self.apply(pieces, t, rates, grad_scale)
        self.t = t
        if steps > 1:
            self.micro_steps = 0

    def _last_of_accumulation(
        self, pieces: list[Piece], grad_scale: float, max_norm: float | None
    ) -> tuple[list[Piece], float, bool] | None:
        """The pieces, gradient scale and whether the kernel reads the sum twice, for the
        last gradients of an accumulation (None: they are skipped by the NaN/Inf policy).

        The kernel adds the gradients waiting and the mean is in its scale. The norm of
        the mean (clipping), or a step of passes of its own, needs the sum first: added
        here, if these gradients pass the NaN/Inf policy; the update then reads the sum
        as its gradient, and an elementwise kernel reads it as the accumulated ones too:
        2 * sum exactly, to be taken at half the scale."""
        grad_scale /= self.settings.accumulation_steps
        if max_norm is None and self.kernel is not None:
            return pieces, grad_scale, False
        if not self._allowed(pieces, None):
            return None
        self._add_to_accumulated(pieces, copy=False)
        summed = self._flat_pieces(self.accumulated.buffer)  # type: ignore[union-attr]
        return summed, grad_scale, self.kernel is not None

    def _allowed(self, pieces: Sequence[Piece], known_finite: bool | None) -> bool:
        """Whether the NaN/Inf policy lets a step with these pieces' gradients through
        (``known_finite``: already known from the clipping norm)."""
        nonfinite = self.nonfinite
        if nonfinite.policy == "ignore":  # 'ignore' lets every step through
            return True
        _, last_pieces, last_grads = self._last_flat_pieces
        grads_read = last_grads if pieces is last_pieces else [p.grad for p in pieces]
        return nonfinite.allows(grads_read, lambda: self.offending_layers(pieces), known_finite)

    def _accumulate(self, grads: GradsLike, grad_scale: float) -> None:
        """One gradient of an accumulation that is not its last: checked, then added to
        the sum (copied, for the first); no parameter changes."""
        if grad_scale != 1.0:
            raise ValueError(
                f"grad_scale={grad_scale} multiplies the mean of the accumulated gradients: "
                f"pass it with the last of every {self.settings.accumulation_steps} steps"
            )
        pieces = self.plan(grads)
        if not self._allowed(pieces, None):
            return  # skipped: not counted, the next gradients take its place
        self._add_to_accumulated(pieces, copy=self.micro_steps == 0)
        self.micro_steps += 1

    def _add_to_accumulated(self, pieces: Sequence[Piece], copy: bool) -> None:
        """The pieces' gradients added to (or, ``copy``, written over) their ranges of the
        accumulation buffer."""
        assert self.accumulated is not None
        total = self.accumulated.buffer
        for piece in pieces:
            start = self.layout.span(piece.names[0]).start
            target = total[start : start + piece.grad.size]
            if copy:
                np.copyto(target, piece.grad)
            else:
                add_into.variant_for(target)(target, piece.grad)

    def plan(self, grads: GradsLike) -> list[Piece]:
        """The checked pieces of a step with ``grads`` (any form ``step`` takes): one per
        run of layers of a group for flat gradients, one per layer for a dict. Checks
        everything a step needs and writes nothing."""
        if isinstance(grads, FlatParams):  # the common case first: on every step's path
            check_same_layout(grads.layout, self.layout, "grads")
            return self._flat_pieces(grads.buffer)
        # the abstract Mapping test costs more than the rest of a step's checks
        if isinstance(grads, np.ndarray) or not isinstance(grads, Mapping):
            return self._flat_pieces(self.flat_gradients(grads))  # raises for other types
        return self._layer_pieces(grads)

    def apply(
        self,
        pieces: Sequence[Piece],
        t: int,
        rates: Sequence[float],
        grad_scale: float,
        carried: Carried | None = None,
    ) -> None:
        """The update itself: the kernel on checked ``pieces`` as step ``t``, with each
        group's learning rate from ``rates`` and every gradient times ``grad_scale``
        (clipping; the mean over ranks of a sharded step). ``self.t`` is left alone.
        ``carried``: values a torch checkpoint carries from step to step (ASGD's ``eta``
        and ``mu``) for the scalar function, where they are not its own. The weight EMA, if
        any, moves in the same pass (``ema_steps`` counts it)."""
        table = self.scalar_table(t, rates, grad_scale, carried)
        for piece in pieces:
            # every piece has a loop here: the algorithms without one override apply
            piece.loop.variant_for(piece.param)(*piece.arrays, *table[piece.group])  # type: ignore[union-attr]
        self.ema_steps += 1

    def update_layer(
        self,
        name: str,
        grad: np.ndarray,
        t: int,
        grad_scale: float = 1.0,
        carried: Carried | None = None,
    ) -> None:
        """One kernel call that updates layer ``name`` alone, as step ``t`` of that layer,
        with the 1-D gradient ``grad`` (its size, this dtype) times ``grad_scale``.

        The stage for callers whose layers keep step counts of their own (torch's
        per-parameter ``state['step']``): no checks, no NaN/Inf policy, no clipping, and
        ``self.t`` is left alone. The caller has checked ``grad``; ``t`` >= 1. ``carried``
        as for ``apply``. The layer's weight EMA moves by ``ema_weight()``; the caller
        counts the steps (``ema_steps``) once all its layers have moved.
        """
        view = self._layer_segments[name]
        scalars = self.scalar_table(t, self.learning_rates(t), grad_scale, carried)[view.group]
        param = view.flat_param
        loop = view.loop  # None only for the algorithms that override update_layer
        loop.variant_for(param)(param, grad, *view.kernel_states, *view.tail, *scalars)  # type: ignore[union-attr]

    def learning_rates(self, t: int) -> list[float]:
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

    def scalar_table(
        self,
        t: int,
        rates: Sequence[float],
        grad_scale: float = 1.0,
        carried: Carried | None = None,
    ) -> list[tuple]:
        """The kernel's scalar record of every group for step ``t`` (empty for a frozen or
        empty group): the declaration's pure scalar function, in float64 (given
        ``carried`` as keywords, where there are any: one mapping for every group, or a
        sequence of one per group)."""
        scalars, settings, default_decay = self.declaration.scalars, self.settings, self._decay
        per_group: list[Callable[..., tuple]]  # made only where it is used
        if carried:  # the same values for every group, or a mapping per group
            if isinstance(carried, Mapping):
                carried = [carried] * len(self.groups)
            per_group = [partial(scalars, **values) for values in carried]
        table: list[tuple]
        if len(self.groups) == 1:  # the common case, on every step's path
            scalars_of = per_group[0] if carried else scalars
            table = [scalars_of(settings, t, rates[0], default_decay, grad_scale)]
        else:
            if not carried:
                per_group = [scalars] * len(self.groups)
            table = []
            for group, lr, scalars_of in zip(self.groups, rates, per_group, strict=True):
                if group.frozen or not group.names:
                    table.append(())
                    continue
                decay = default_decay if group.weight_decay is None else group.weight_decay
                table.append(scalars_of(settings, t, lr, decay, grad_scale))
        if settings.ema_decay is not None and self.kernel is not None:
            # the average's weight, the same for every group (the algorithms of several
            # passes move the average in a pass of their own: move_ema_of)
            weight = self.ema_weight()
            table = [(*record, weight, 1.0 - weight) if record else record for record in table]
        if self._rounding_streams:  # bfloat16 state: the random streams' keys of step t
            keys = state_dtypes.rounding_keys(t, self._rounding_streams)
            table = [record + keys if record else record for record in table]
        return table

    def gradient_norm(self, pieces: Sequence[Piece]) -> float:
        """The 2-norm of the pieces' gradients taken together (deterministic: fixed blocks
        per layer, see kernels/norm.py)."""
        norm_pieces = [(piece.grad, piece.norm_bounds) for piece in pieces]
        return kernels.norm.global_norm(norm_pieces, self._norm_scratch)

    def offending_layers(self, pieces: Sequence[Piece]) -> list[str]:
        """The layers whose gradients in ``pieces`` hold NaN or Inf."""
        offending = []
        for piece in pieces:
            start = 0
            for name in piece.names:
                size = self.layout.sizes[self.layout.index(name)]
                if not np.isfinite(piece.grad[start : start + size]).all():
                    offending.append(name)
                start += size
        return offending

    def flat_gradients(self, grads: GradsLike, out: np.ndarray | None = None) -> np.ndarray:
        """``grads`` as one checked flat array in layout order: the buffer of a FlatParams
        laid out like the parameters, a flat array of ``layout.size`` elements itself, or a
        dict's gradients copied into ``out`` (made if omitted; frozen layers left as they
        are)."""
        if isinstance(grads, FlatParams):
            check_same_layout(grads.layout, self.layout, "grads")
            return grads.buffer
        if isinstance(grads, np.ndarray):
            return self._checked_flat_array(grads)
        if isinstance(grads, Mapping):
            if out is None:
                out = np.zeros(self.layout.size, dtype=self.layout.dtype)
            for name, grad in self.layer_gradients(grads):
                out[self.layout.span(name)] = grad
            return out
        raise TypeError(
            f"grads must be a FlatParams, a dict of arrays or a flat array; got {type(grads).__name__}"
        )

    def layer_gradients(self, grads: Mapping[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
        """Each updated layer's name and checked 1-D gradient, from a dict keyed like the
        parameters or the course way (raises on a missing, stray or mismatched one)."""
        return [(piece.names[0], piece.grad) for piece in self._layer_pieces(grads)]

    def _layer_pieces(self, grads: Mapping[str, np.ndarray]) -> list[Piece]:
        """One checked piece per updated layer: the per-layer gradient validator."""
        prefix = grad_key_prefix(grads, self._updated_names, self.layout.names)
        self._check_buffers_writable()
        pieces = []  # one piece per layer on every step: new_record, as Piece.of
        # unpacked in the loop header: the fields of this module's own LayerView records, in
        # their order (attribute reads cost more, once per field per layer per step)
        for (
            group, name, names, param, flat_param, flat_states, states, bounds, tail, loop,
        ) in self._layer_views:  # fmt: skip
            describe = partial(self._label, name, prefix)
            grad = layer_grad(grads[prefix + name], param, describe)
            arrays = (flat_param, grad, *states)
            if states is flat_states:
                check_no_shared_memory(arrays, describe)
            else:  # place-holders in the kernel's order: check the buffers as messages name them
                check_no_shared_memory((flat_param, grad, *flat_states), describe)
            pieces.append(
                new_record(
                    Piece, (group, names, flat_param, grad, states, bounds, arrays + tail, loop)
                )
            )
        return pieces

    def _flat_pieces(self, grad: np.ndarray) -> list[Piece]:
        self._check_buffers_writable()
        last_grad, last_pieces, _ = self._last_flat_pieces
        if grad is last_grad:  # a training loop passes the same gradient buffer every step
            return last_pieces
        # our own buffers never overlap one another: only the gradient can overlap them
        if id(memory_owner(grad)) in self._own_memory_owners:
            buffers = (self.params.buffer, grad, *self._state_buffers)
            check_no_shared_memory(buffers, partial(self._label, None, ""))
        pieces = [
            Piece.of(
                run.group,
                run.names,
                run.param,
                grad if run.whole else grad[run.start : run.stop],
                run.states,
                run.norm_bounds,
                run.tail,
                run.loop,
            )
            for run in self._flat_runs
        ]
        # checked once: neither array can move
        self._last_flat_pieces = (grad, pieces, [piece.grad for piece in pieces])
        return pieces

    def _checked_flat_array(self, grad: np.ndarray) -> np.ndarray:
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
        if self.int8 is not None:
            for key in self.state:
                check_writable(self.int8.scales[key], f"int8.scales[{key!r}]")
                check_writable(self.int8.small[key].buffer, f"int8.small[{key!r}]")

    # -- views of the buffers, made once ------------------------------------------------------
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
        held = () if self.int8 is None else self.int8.buffers()
        return (self.params.buffer, *self._state_buffers, *held)

    @cached_property
    def _own_memory_owners(self) -> frozenset[int]:
        return frozenset(id(memory_owner(buffer)) for buffer in self._own_buffers)

    @cached_property
    def _flat_runs(self) -> list[FlatRun]:
        """The runs of neighbouring layers of one group (frozen ones left out). Made once:
        the buffers never move."""
        return flat_runs(self._buffers)

    @cached_property
    def _layer_views(self) -> list[LayerView]:
        """Every updated layer's views of the buffers, in layout order."""
        return layer_views(self._buffers)

    @property
    def _buffers(self) -> Buffers:
        return Buffers(
            self.params,
            self.state,
            self.groups,
            self._state_order,
            self._loops,
            self.storage,
            self.first_index,
            self.int8,
            self.ema,
            self.accumulated,
        )

    @cached_property
    def _layer_segments(self) -> dict[str, LayerView]:
        """Each updated layer's views by name (``update_layer``'s lookup)."""
        return {view.name: view for view in self._layer_views}

    def release_state(self) -> None:
        """Free the state buffers and every view of them (a sharded optimizer keeps the
        state in slices on its ranks); this optimizer can no longer step."""
        self.state, self._state_order, self.int8 = {}, (), None
        for cached in self.cached_views:
            self.__dict__.pop(cached, None)

    def __getstate__(self) -> dict[str, Any]:
        # A copy or pickle must remake its views of its own buffers on first use: a copied
        # view would be an independent array. The settings record is made per declaration,
        # so it travels as a dict.
        # The kernel is the declaration's (compiled code, shared): remade, not copied.
        skipped = (*self.cached_views, "kernel", "_loops")
        state = {k: v for k, v in self.__dict__.items() if k not in skipped}
        state["settings"] = dataclasses.asdict(self.settings)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._set_settings(self.declaration.settings_type(**state["settings"]))
        self._set_kernel()

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
        ``state`` (for each state buffer, a dict of arrays by layer name, as stored: codes
        for bfloat16 and for int8's quantized layers). int8 state adds ``scales`` (for
        each state, each quantized layer's float32 block scales); an algorithm that carries
        values from step to step adds ``running`` (see ``running_state``), one with a
        weight EMA adds ``ema`` (its arrays by layer name), and one with
        ``accumulation_steps`` adds ``accumulated`` (``micro_steps`` and the sum of the
        gradients waiting, ``grads``, by layer name).
        """
        saved = {
            "algorithm": type(self).__name__,
            "hyperparameters": self.hyperparameters(),
            "groups": self.group_settings(),
            "t": self.t,
            "layout": self.layout.describe(),
        }
        running = self.running_state()
        if running:
            saved["running"] = running
        if self.ema is not None:
            saved["ema"] = {name: np.array(self.ema[name]) for name in self.layout.names}
        if self.accumulated is not None:
            saved["accumulated"] = {
                "micro_steps": self.micro_steps,
                "grads": {name: np.array(self.accumulated[name]) for name in self.layout.names},
            }
        if self.int8 is not None:
            saved["state"] = {key: self.int8.stored(key) for key in self.state}
            saved["scales"] = {key: self.int8.stored_scales(key) for key in self.state}
            return saved
        saved["state"] = {
            key: {name: np.array(state[name]) for name in self.layout.names}
            for key, state in self.state.items()
        }
        return saved

    def running_state(self) -> dict[str, Any]:
        """What the algorithm carries from step to step besides its buffers and ``t``, as
        plain values (JSON-ready), saved under ``'running'`` by ``state_dict`` and
        checkpoints: nothing (Schedule-Free AdamW carries its mode and weight sums)."""
        return {}

    def checked_running_state(self, saved: object) -> Any:
        """A saved ``running`` entry checked against this optimizer (raises saying what
        differs), as ``restore_running_state`` takes it."""
        if saved:
            raise KeyError(
                f"state_dict['running'] holds {sorted(saved) if isinstance(saved, Mapping) else saved!r}"
                f", but {type(self).__name__} carries nothing from step to step: it was saved "
                "by another algorithm"
            )
        return None

    def restore_running_state(self, checked: Any) -> None:
        """Take what ``checked_running_state`` returned (nothing to take here)."""

    def state_layout(self, key: str, layout: Layout) -> Layout:
        """How state ``key`` of parameters laid out as ``layout`` is laid out: as they are
        (Adafactor's factors are smaller)."""
        return layout

    def layer_state_keys(self, name: str) -> tuple[str, ...]:
        """The states layer ``name`` keeps: every one (Adafactor's depend on its shape)."""
        return tuple(self.state)

    def state_values(self, key: str) -> dict[str, np.ndarray]:
        """State ``key`` (``'exp_avg'``, ...) as float values by layer, decoded from how it
        is stored (copies): the numbers the next step starts from, for any state_dtype."""
        if key not in self.state:
            raise KeyError(f"no state {key!r}; this optimizer keeps {list(self.state)}")
        if self.int8 is not None:
            return {name: self.int8.values(key, name) for name in self.layout.names}
        state = self.state[key]
        return {
            name: state_dtypes.float_values(np.array(state[name]), self.state_dtype)
            for name in self.layout.names
        }

    def group_settings(self) -> list[dict[str, Any]]:
        """Each group's layers and settings as plain values (the default group left out)."""
        return [group.describe(self._lr_setting) for group in self.groups[1:]]

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` saved. Everything is checked before anything changes."""
        check_state_dict(state_dict, type(self).__name__, self.layout.describe(), self.state_names)
        expected = sorted(self.hyperparameters())
        saved_hyperparameters = state_dict["hyperparameters"]
        if isinstance(saved_hyperparameters, Mapping):
            # saved before the storage options, the EMA and accumulation existed: the
            # parameters' dtype, no EMA, an update per step
            older: dict[str, Any] = {
                k: None for k in (*state_dtypes.STORAGE_OPTIONS, "ema_decay") if k in expected
            }
            older["accumulation_steps"] = 1
            saved_hyperparameters = {**older, **saved_hyperparameters}
        if (
            not isinstance(saved_hyperparameters, Mapping)
            or sorted(saved_hyperparameters) != expected
        ):
            raise KeyError(
                f"state_dict['hyperparameters'] must hold exactly {expected}; "
                f"{holds(saved_hyperparameters, expected)}"
            )
        saved_state_dtype = saved_hyperparameters.get("state_dtype") or self.layout.dtype.name
        if saved_state_dtype != self.state_dtype:
            raise ValueError(
                f"state_dict holds {saved_state_dtype} state but this optimizer stores "
                f"state_dtype={self.state_dtype!r}; convert it explicitly: "
                f"opt.load_state_dict(fastoptim.convert_state_dtype(state_dict, "
                f"{self.state_dtype!r}))"
            )
        saved_block = saved_hyperparameters.get("block_size")
        if saved_block != getattr(self.settings, "block_size", None):
            theirs, ours = (
                blockwise.block_elements(b) for b in (saved_block, self.settings.block_size)
            )
            raise ValueError(
                f"state_dict holds int8 state in blocks of {theirs} but this optimizer's "
                f"block_size is {ours}; "
                f"convert it explicitly: opt.load_state_dict(fastoptim.convert_state_dtype("
                f"state_dict, 'int8', block_size={self.settings.block_size}))"
            )
        t = check_step(state_dict["t"], "state_dict['t']", first=0)
        check_lr_or_schedule(saved_hyperparameters["lr"], t + 1)  # at the step to come
        groups = restored_groups(state_dict.get("groups", []), self.groups, t + 1)
        arrays = {}  # target view -> checked array
        for key in self.state_names:
            saved = state_dict["state"][key]
            for name in self.layout.names:
                label = f"state_dict['state'][{key!r}][{name!r}]"
                target = self.state[key][name] if self.int8 is None else self.int8.target(key, name)
                arrays[key, name] = (
                    target,
                    checked_state_array(saved[name], label, target, self.state_dtype),
                )
        if self.int8 is not None:
            arrays.update(checked_scales(state_dict, self.int8))
        if self.ema is not None and saved_hyperparameters.get("ema_decay") is not None:
            saved_ema = state_dict.get("ema")
            if not isinstance(saved_ema, Mapping) or set(saved_ema) != set(self.layout.names):
                raise KeyError(
                    "state_dict['ema'] must hold the weight EMA, one array per layer; "
                    f"{holds(saved_ema, self.layout.names)}"
                )
            for name in self.layout.names:
                target = self.ema[name]
                label = f"state_dict['ema'][{name!r}]"
                arrays["ema", name] = (
                    target,
                    checked_state_array(saved_ema[name], label, target, self.layout.dtype.name),
                )
        micro_steps = self._checked_accumulated(state_dict, saved_hyperparameters, arrays)
        running = self.checked_running_state(state_dict.get("running"))
        self.set_hyperparameters(**saved_hyperparameters)  # validates, then sets
        self.groups = groups
        for target, array in arrays.values():
            np.copyto(target, array)
        self.restore_running_state(running)
        self.t = self.ema_steps = t
        self.micro_steps = micro_steps

    def _checked_accumulated(
        self, state_dict: Mapping[str, Any], saved_hyperparameters: Mapping[str, Any], arrays: dict
    ) -> int:
        """A saved accumulation checked (its arrays join ``arrays``): the number of
        gradients waiting in it, 0 without accumulation."""
        if self.accumulated is None or saved_hyperparameters.get("accumulation_steps", 1) == 1:
            return 0  # a different accumulation_steps is refused with the hyper-parameters
        saved = state_dict.get("accumulated")
        names = self.layout.names
        steps = self.settings.accumulation_steps
        if not isinstance(saved, Mapping) or not isinstance(saved.get("grads"), Mapping):
            raise KeyError(
                "state_dict['accumulated'] must hold 'micro_steps' and 'grads' (the sum of the "
                "gradients waiting, one array per layer)"
            )
        micro_steps = saved.get("micro_steps")
        if not (isinstance(micro_steps, int) and 0 <= micro_steps < steps):
            raise ValueError(
                f"state_dict['accumulated']['micro_steps'] is {micro_steps!r}; expected a whole "
                f"number in [0, {steps})"
            )
        if set(saved["grads"]) != set(names):
            raise KeyError(
                f"state_dict['accumulated']['grads'] must hold one array per layer; "
                f"{holds(saved['grads'], names)}"
            )
        for name in names:
            target = self.accumulated[name]
            label = f"state_dict['accumulated']['grads'][{name!r}]"
            array = checked_state_array(saved["grads"][name], label, target, self.layout.dtype.name)
            arrays["accumulated", name] = (target, array)
        return micro_steps

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({self.layout}, {hp}, t={self.t})"


def _refuse_storage_options_it_lacks(declaration: Declaration, kwargs: Mapping[str, Any]) -> None:
    """``state_dtype``/``block_size`` given to an algorithm that does not take them: a
    TypeError naming the algorithms that do (before the signature's bare one)."""
    names = {hp.name for hp in declaration.hyperparameters}
    for option in state_dtypes.STORAGE_OPTIONS:
        if option in kwargs and option not in names:
            takers = sorted(
                name
                for name, cls in OPTIMIZER_CLASSES.items()
                if option in {hp.name for hp in cls.declaration.hyperparameters}
            )
            raise TypeError(
                f"{declaration.name} takes no {option}: its state stays in the parameters' "
                f"dtype. The optimizers with {option}: {', '.join(takers)}"
            )


def _storage(settings: Settings) -> tuple:
    """What decides how ``settings``' state is stored (state_dtype, block_size)."""
    return tuple(getattr(settings, name, None) for name in state_dtypes.STORAGE_OPTIONS)


def _params_dtype(params: object) -> np.dtype:
    """The dtype of ``params`` (a dict's first array: flattening checks the others)."""
    if isinstance(params, FlatParams):
        return params.layout.dtype
    first = next(iter(params.values()), None) if isinstance(params, Mapping) else None
    return np.asarray(first).dtype if first is not None else np.dtype(np.float64)


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


__all__ = ["CACHED_VIEWS", "OPTIMIZER_CLASSES", "GradsLike", "Optimizer", "Piece"]
