"""Optimizer: the shared machinery of every fastoptim optimizer class.

Owns the flat parameters, one flat buffer per state, and the step counter; turns whatever
gradients ``step`` receives into validated segments; runs the algorithm's kernel; saves and
restores everything through ``state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, MutableMapping
from functools import cached_property, partial
from typing import Any

import numpy as np

from fastoptim import kernels, schedules
from fastoptim.flat import FlatParams, flatten
from fastoptim.kernels import ElementwiseKernel
from fastoptim.optim.hyperparameters import (
    check_learning_rate,
    check_lr_or_schedule,
    check_max_norm,
    check_step,
)
from fastoptim.optim.nonfinite import NonFiniteGuard
from fastoptim.optim.segments import (
    Segment,
    check_no_shared_memory,
    check_same_layout,
    check_writable,
    layer_grad,
)

GradsLike = FlatParams | Mapping[str, np.ndarray] | np.ndarray


class Optimizer:
    """Base class: subclasses set ``kernel`` and ``state_names`` and implement
    ``hyperparameters``, ``_set_hyperparameters`` and ``_scalars``."""

    kernel: ElementwiseKernel  # set by each algorithm, on the class or (options) per instance
    state_names: tuple[str, ...] = ()

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
        max_grad_norm: float | None = None,
    ) -> None:
        self.nonfinite = NonFiniteGuard(nonfinite, max_consecutive_skips)
        self.max_grad_norm = None if max_grad_norm is None else check_max_norm(max_grad_norm)
        self.last_grad_norm: float | None = None  # before clipping, of the last step's grads
        self._grad_scale = 1.0
        self.params: FlatParams = _as_flat_params(params)
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

    def _lr_setting(self) -> Any:
        """What state_dict saves as ``lr``: the rate, or a describable schedule."""
        if isinstance(self.schedule, schedules.Schedule):
            return self.schedule.describe()
        return self.lr

    # -- to be provided by each algorithm -------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        """The hyper-parameters as plain Python values, by their argument names."""
        raise NotImplementedError

    def _set_hyperparameters(self, *args: Any, **hyperparameters: Any) -> None:
        """Validate and set every hyper-parameter (raises before setting any)."""
        raise NotImplementedError

    def _scalars(self, t: int) -> tuple[float, ...]:
        """The kernel's scalar arguments for step ``t``, as Python floats."""
        raise NotImplementedError

    # -- stepping ---------------------------------------------------------------------------
    def step(self, grads: GradsLike) -> None:
        """Apply one update with ``grads`` and advance ``t`` by one.

        ``grads`` is a FlatParams with this layout (one kernel call over the whole buffer),
        a flat array of ``layout.size`` elements, or a dict keyed like the parameters
        (``'W1'``) or the course way (``'dW1'``), updated layer by layer. Everything is
        checked before anything changes. Gradients holding NaN or Inf are handled as the
        ``nonfinite`` policy says (by default the step is skipped; see NonFiniteGuard).
        """
        t = self.t + 1
        if self.schedule is not None:  # checked before anything changes
            check_learning_rate(self.schedule(t), f"lr({t})")
        segments = self._segments(grads)
        flat_grads = [segment[1] for segment in segments]
        known_finite = None
        self._grad_scale = 1.0
        if self.max_grad_norm is not None:
            # torch.nn.utils.clip_grad_norm_'s rule; the scale joins the kernel's gradient
            # sign, so the gradients are read once here and once in the update
            norm = kernels.norm.global_norm(flat_grads, self._norm_scratch)
            self.last_grad_norm = norm
            known_finite = math.isfinite(norm)
            self._grad_scale = min(1.0, self.max_grad_norm / (norm + 1e-6))
        if not self.nonfinite.allows(flat_grads, partial(_offending, self, segments), known_finite):
            return
        scalars = self._scalars(t)
        self.kernel.run(segments, scalars)
        self.t += 1

    def _segments(self, grads: GradsLike) -> list[Segment]:
        if isinstance(grads, FlatParams):
            check_same_layout(grads.layout, self.layout, "grads")
            return [self._flat_segment(grads.buffer)]
        if isinstance(grads, np.ndarray):
            return [self._flat_segment(self._flat_grad(grads))]
        if isinstance(grads, Mapping):
            return self._layer_segments(grads)
        raise TypeError(
            f"grads must be a FlatParams, a dict of arrays or a flat array; got {type(grads).__name__}"
        )

    def _flat_segment(self, grad: np.ndarray) -> Segment:
        self._check_buffers_writable()
        segment = (self.params.buffer, grad, *self._state_buffers)
        check_no_shared_memory(segment, partial(self._label, None, ""))
        return segment

    def _check_buffers_writable(self) -> None:
        # The buffers are shared with the caller (opt.params, opt.state), who may have made
        # one read-only; the per-layer views made earlier would not know.
        check_writable(self.params.buffer, "params")
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

    def _layer_segments(self, grads: Mapping[str, np.ndarray]) -> list[Segment]:
        prefix = _grad_key_prefix(grads, self.layout.names)
        self._check_buffers_writable()
        segments = []
        for name, param, flats in self._layer_views:
            describe = partial(self._label, name, prefix)
            segment = (flats[0], layer_grad(grads[prefix + name], param, describe), *flats[1:])
            check_no_shared_memory(segment, describe)
            segments.append(segment)
        return segments

    @cached_property
    def _norm_scratch(self) -> np.ndarray:
        # one block sum per BLOCK elements of the whole buffer: enough for any segment
        return np.empty(max(1, kernels.norm_blocks(self.layout.size)), dtype=np.float64)

    @cached_property
    def _state_buffers(self) -> tuple[np.ndarray, ...]:
        return tuple(state.buffer for state in self.state.values())

    @cached_property
    def _layer_views(self) -> list[tuple[str, np.ndarray, Segment]]:
        """Per layer: its name, its parameter view, and 1-D views ``(param, *state)`` of the
        buffers. Made once: the buffers live as long as the optimizer and never move."""
        layers = []
        for name in self.layout.names:
            param = self.params[self.params.prefix + name]
            flats = (param.ravel(), *(state[name].ravel() for state in self.state.values()))
            layers.append((name, param, flats))
        return layers

    def __getstate__(self) -> dict[str, Any]:
        # A copy or pickle must remake its views of its own buffers on first use: a copied
        # view would be an independent array.
        state = self.__dict__.copy()
        state.pop("_state_buffers", None)
        state.pop("_layer_views", None)
        return state

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

        Keys: ``algorithm``, ``hyperparameters``, ``t``, ``layout`` (names, shapes, dtype)
        and ``state`` (for each state buffer, a dict of arrays by layer name).
        """
        return {
            "algorithm": type(self).__name__,
            "hyperparameters": self.hyperparameters(),
            "t": self.t,
            "layout": self.layout.describe(),
            "state": {
                key: {name: np.array(state[name]) for name in self.layout.names}
                for key, state in self.state.items()
            },
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` saved. Everything is checked before anything changes."""
        _check_state_dict(state_dict, type(self).__name__, self.layout.describe(), self.state_names)
        expected = sorted(self.hyperparameters())
        if (
            not isinstance(state_dict["hyperparameters"], Mapping)
            or sorted(state_dict["hyperparameters"]) != expected
        ):
            raise KeyError(f"state_dict['hyperparameters'] must hold exactly {expected}")
        t = check_step(state_dict["t"], "state_dict['t']", first=0)
        check_lr_or_schedule(state_dict["hyperparameters"]["lr"], t + 1)  # at the step to come
        arrays = {}
        for key in self.state_names:
            saved = state_dict["state"][key]
            for name in self.layout.names:
                label = f"state_dict['state'][{key!r}][{name!r}]"
                arrays[key, name] = _checked_state_array(saved[name], label, self.state[key][name])
        self._set_hyperparameters(**state_dict["hyperparameters"])  # validates, then sets
        for (key, name), array in arrays.items():
            np.copyto(self.state[key][name], array)
        self.t = t

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({self.layout}, {hp}, t={self.t})"


def _offending(optimizer: Optimizer, segments: list[Segment]) -> list[str]:
    """The layers whose gradients hold NaN or Inf (one flat segment or one per layer)."""
    names = optimizer.layout.names
    if len(segments) == len(names):
        grads = [segment[1] for segment in segments]
    else:  # one segment over the whole buffer
        grads = [segments[0][1][optimizer.layout.span(name)] for name in names]
    return [name for name, grad in zip(names, grads, strict=True) if not np.isfinite(grad).all()]


def _as_flat_params(params: object) -> FlatParams:
    if isinstance(params, FlatParams):
        return params
    if isinstance(params, MutableMapping):
        flat = flatten(params)
        for key in flat:  # the caller's dict now shows the live views
            params[key] = flat[key]
        return flat
    raise TypeError(f"params must be a FlatParams or a dict of arrays; got {type(params).__name__}")


def _grad_key_prefix(grads: Mapping, names: tuple[str, ...]) -> str:
    """'' when ``grads`` is keyed like the parameters, 'd' when keyed the course way."""
    for prefix in ("", "d"):
        expected = {prefix + name for name in names}
        if expected <= grads.keys():
            extra = [key for key in grads if key not in expected]
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
    if state_dict["layout"] != layout:
        raise ValueError(
            "state_dict was saved for another layout (layer names, shapes or dtype differ); "
            "load it into an optimizer over the same parameters"
        )
    state = state_dict["state"]
    if not isinstance(state, Mapping) or set(state) != set(state_names):
        raise KeyError(f"state_dict['state'] must hold exactly {list(state_names)}")
    for key in state_names:
        if not isinstance(state[key], Mapping) or set(state[key]) != set(layout["names"]):
            raise KeyError(f"state_dict['state'][{key!r}] must hold one array per layer")


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
