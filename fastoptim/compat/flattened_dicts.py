"""Small models on the course's plain dicts: flattened on the first call, one kernel after.

A course loop calls a drop-in with the same ``parameters`` and state dicts (``v``, ``s``)
on every step and a new ``grads`` dict from backward. Layer by layer, a small model pays a
kernel call and its checks per layer, more than numpy's few operations cost. So the first
call that passes every check copies the parameters and the states into flat buffers and
rebinds the dicts' entries to views of them (the reference rebinds every entry on every
step, so course code never holds on to the old arrays). Each later call checks that the
dicts still hold those views, copies the gradients into a flat scratch buffer (backward
made new arrays: one copy each, checked for shape and dtype) and makes one kernel call.

Only models of fewer than ``FLATTEN_BELOW`` elements are flattened: for larger layers the
per-layer calls cost nothing next to the work, and a copy of the gradients would.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

from fastoptim.flat import FlatParams, flatten
from fastoptim.optim.segments import Segment

FLATTEN_BELOW = 1 << 16  # elements in all layers together
MODELS_KEPT = 8  # flattened models remembered (the oldest is forgotten first)
_WRITABLE = operator.attrgetter("flags.writeable")
_DTYPE = operator.attrgetter("dtype")
_SHAPE = operator.attrgetter("shape")
_BASE = operator.attrgetter("base")


@dataclass
class FlattenedDicts:
    """The flat buffers behind one model's plain dicts, and the views the dicts hold."""

    params: FlatParams
    states: tuple[FlatParams, ...]
    grads: FlatParams  # scratch: each call's gradients are copied here
    names: tuple[str, ...]  # parameter names, in the dict's order
    grad_keys: tuple[str, ...]  # 'd' + name
    param_views: tuple[np.ndarray, ...]
    state_views: tuple[tuple[np.ndarray, ...], ...]
    grad_views: tuple[np.ndarray, ...]
    checked_grad_keys: set[tuple[str, ...]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.dtypes = [self.params.layout.dtype] * len(self.names)
        self.shapes = list(self.params.layout.shapes)
        self.segment = (self.params.buffer, self.grads.buffer, *(s.buffer for s in self.states))

    def holds(self, parameters: Mapping, states: Sequence[Mapping]) -> bool:
        """Whether the dicts still hold this record's views (and no other layers), all
        writable (a caller may have made one read-only: then the full checks say so)."""
        if len(parameters) != len(self.names) or len(states) != len(self.states):
            return False
        if not all(map(operator.is_, map(parameters.get, self.names), self.param_views)):
            return False
        for state, views in zip(states, self.state_views, strict=True):
            if len(state) != len(views) or not all(
                map(operator.is_, map(state.get, self.grad_keys), views)
            ):
                return False
        if not all(map(_WRITABLE, self.param_views)):
            return False
        return all(all(map(_WRITABLE, views)) for views in self.state_views)

    def segment_for(self, grads: Mapping) -> Segment | None:
        """The whole-buffer segment with ``grads`` copied into the scratch buffer; None
        when a gradient is missing or not an array of its parameter's shape and dtype (the
        full checks then say what is wrong). The caller has checked ``grads``' keys."""
        # C-level maps: this runs on every step of a course loop. An array-like without a
        # dtype or a shape (a list) raises AttributeError, and goes the long way round.
        try:
            arrays = list(map(grads.__getitem__, self.grad_keys))
            if list(map(_DTYPE, arrays)) != self.dtypes or list(map(_SHAPE, arrays)) != self.shapes:
                return None
            if not all(map(operator.is_, map(_BASE, arrays), repeat(None))):
                return None  # a view: it may alias a parameter, which the full checks refuse
        except (KeyError, AttributeError):
            return None
        for view, array in zip(self.grad_views, arrays, strict=True):
            view[...] = array
        return self.segment


_RECORDS: dict[int, FlattenedDicts] = {}  # by id of the parameters dict


def flattened(parameters: Mapping, states: Sequence[Mapping]) -> FlattenedDicts | None:
    """The record of an earlier call whose dicts these still are, if any."""
    record = _RECORDS.get(id(parameters))
    return record if record is not None and record.holds(parameters, states) else None


def flatten_dicts(
    parameters: MutableMapping, states: Sequence[MutableMapping]
) -> FlattenedDicts | None:
    """A record with the dicts' values in flat buffers, or None when the model is not a
    small one of one float dtype with state dicts keyed exactly like its gradients. The
    dicts are not changed here: ``adopt`` rebinds them."""
    arrays = list(parameters.values())
    if not arrays or not all(type(a) is np.ndarray for a in arrays):
        return None
    dtype = arrays[0].dtype
    if any(a.dtype != dtype for a in arrays) or sum(a.size for a in arrays) >= FLATTEN_BELOW:
        return None
    names = tuple(parameters)
    grad_keys = tuple("d" + name for name in names)
    if any(set(state) != set(grad_keys) for state in states):
        return None
    params = flatten(parameters)
    flat_states = []
    for state in states:
        flat_state = params.zeros_like(prefix="d")
        for key in grad_keys:
            flat_state[key][...] = state[key]
        flat_states.append(flat_state)
    grads = params.zeros_like(prefix="d")
    return FlattenedDicts(
        params=params,
        states=tuple(flat_states),
        grads=grads,
        names=names,
        grad_keys=grad_keys,
        param_views=tuple(params[name] for name in names),
        state_views=tuple(tuple(s[key] for key in grad_keys) for s in flat_states),
        grad_views=tuple(grads[key] for key in grad_keys),
    )


def adopt(
    record: FlattenedDicts, parameters: MutableMapping, states: Sequence[MutableMapping]
) -> None:
    """Rebind the dicts' entries to the record's views and remember it."""
    for name, view in zip(record.names, record.param_views, strict=True):
        parameters[name] = view
    for state, views in zip(states, record.state_views, strict=True):
        for key, view in zip(record.grad_keys, views, strict=True):
            state[key] = view
    _RECORDS.pop(id(parameters), None)
    if len(_RECORDS) >= MODELS_KEPT:
        del _RECORDS[next(iter(_RECORDS))]
    _RECORDS[id(parameters)] = record


def remembered() -> int:
    """How many flattened models are remembered now (at most ``MODELS_KEPT``)."""
    return len(_RECORDS)
