"""How the course keys its dicts, shared by every drop-in: parameter ``'W1'`` has gradient
and state ``'dW1'``."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from functools import partial
from typing import cast

import numpy as np

from fastoptim.compat import flattened_dicts
from fastoptim.flat import FlatParams
from fastoptim.optim.segments import (
    Segment,
    check_no_shared_memory,
    check_writable,
    layer_segment,
)

GRAD_PREFIX = "d"
_DIGITS = "0123456789"


def course_zeros(parameters: Mapping[str, np.ndarray]) -> MutableMapping[str, np.ndarray]:
    """Zeros shaped like each parameter, keyed ``'d' + name``; a FlatParams for a FlatParams."""
    if isinstance(parameters, FlatParams):
        return parameters.zeros_like(prefix=GRAD_PREFIX + parameters.prefix)
    return {GRAD_PREFIX + name: np.zeros_like(value) for name, value in parameters.items()}


def course_segments(
    parameters: Mapping,
    grads: Mapping,
    states: Sequence[tuple[Mapping, str]],
) -> list[Segment]:
    """Validated kernel segments for a drop-in call.

    One segment over the whole buffers when every argument is a FlatParams laid out like
    the parameters (``Layout.lines_up_with``: ``flatten(grads)`` of a course dict is), or
    when the plain dicts of a small model are (or now get) flattened (see
    flattened_dicts.py); else one per layer, looked up by key as the reference does.
    Other keys in ``grads`` and the states are ignored, as the reference ignores them
    (course backward passes also return ``dA1``, ``dZ1``), except keys shaped like the
    gradient of a parameter that does not exist (``'dW3'`` when the parameters stop at
    ``W2``): those mean gradients of another model, and are refused.

    A plain-dict parameter or state that is a strided or unaligned view is replaced in its
    dict by an updated contiguous copy, as the reference rebinds every entry; this happens
    only once every check has passed.
    """
    if _all_lined_up(parameters, grads, states):
        flat_states = cast(Sequence[tuple[FlatParams, str]], states)
        return [
            _whole_buffer_segment(
                cast(FlatParams, parameters), cast(FlatParams, grads), flat_states
            )
        ]
    state_dicts = [state for state, _ in states]
    record = flattened_dicts.flattened(parameters, state_dicts)
    segment = None if record is None else _flattened_segment(record, parameters, grads)
    if segment is not None:
        return [segment]
    segments = _layer_segments(parameters, grads, states)  # every check, layer by layer
    if record is None and not any(isinstance(m, FlatParams) for m in [parameters, *state_dicts]):
        segment = _flatten(cast(MutableMapping, parameters), grads, state_dicts)
    # a flattened model whose gradients need the long way round (a view, say) keeps its
    # buffers: its dicts hold views of them, which the per-layer segments update
    return segments if segment is None else [segment]


def _flattened_segment(
    record: flattened_dicts.FlattenedDicts, parameters: Mapping, grads: Mapping
) -> Segment | None:
    """The one segment of a model flattened by an earlier call, or None when ``grads``
    needs the per-layer checks."""
    # exactly the gradients' keys cannot hold a stray one; other key sets are checked once
    # each (a course backward pass returns dA1, dZ1, ... too, the same every step)
    keys = () if len(grads) == len(record.grad_keys) else tuple(grads)
    if keys and keys not in record.checked_grad_keys:
        _refuse_stray_gradients(grads, parameters, _parameter_stems(parameters), "grads")
        record.checked_grad_keys.add(keys)
    return record.segment_for(grads)


def _flatten(
    parameters: MutableMapping, grads: Mapping, state_dicts: list[Mapping]
) -> Segment | None:
    """After every per-layer check passed: flatten a small model's dicts for this and the
    next calls, and return the one segment; None when it is not flattened."""
    states = cast(list[MutableMapping], state_dicts)  # the per-layer checks wrote-tested them
    record = flattened_dicts.flatten_dicts(parameters, states)
    segment = None if record is None else record.segment_for(grads)
    if record is None or segment is None:
        return None
    record.checked_grad_keys.add(tuple(grads))
    flattened_dicts.adopt(record, parameters, states)
    return segment


def _layer_segments(
    parameters: Mapping, grads: Mapping, states: Sequence[tuple[Mapping, str]]
) -> list[Segment]:
    """One validated segment per layer (strided or unaligned entries rebound to copies)."""
    stems = _parameter_stems(parameters)
    for container, label in [(grads, "grads"), *states]:
        if not isinstance(container, FlatParams):
            _refuse_stray_gradients(container, parameters, stems, label)
    state_labels = [label for _, label in states]
    rebinds: list[tuple[MutableMapping, str, np.ndarray]] = []
    segments = []
    for name, param in parameters.items():
        key = GRAD_PREFIX + name
        layer_states = [
            _unit_stride(state, key, _lookup(state, key, label, name), rebinds)
            for state, label in states
        ]
        segments.append(
            layer_segment(
                _unit_stride(parameters, name, param, rebinds),
                _lookup(grads, key, "grads", name),
                layer_states,
                partial(_course_label, name, state_labels),
            )
        )
    for container, key, copy in rebinds:
        container[key] = copy
    return segments


def _all_lined_up(parameters: Mapping, grads: Mapping, states: Sequence[tuple]) -> bool:
    """Whether every argument is a FlatParams laid out like the parameters."""
    if not (isinstance(parameters, FlatParams) and isinstance(grads, FlatParams)):
        return False
    layout = parameters.layout
    if not grads.layout.lines_up_with(layout):
        return False
    for state, _ in states:
        if not (isinstance(state, FlatParams) and state.layout.lines_up_with(layout)):
            return False
    return True


def _whole_buffer_segment(
    parameters: FlatParams, grads: FlatParams, states: Sequence[tuple[FlatParams, str]]
) -> Segment:
    """The one segment over the whole buffers, checked (a FlatParams buffer is always a
    C-contiguous 1-D float array: only writability and overlap can be wrong)."""
    segment = [parameters.buffer, grads.buffer]
    labels = ["parameters", "grads"]
    for state, label in states:
        segment.append(state.buffer)
        labels.append(label)
    for position, array in enumerate(segment):
        if position != 1 and not array.flags.writeable:
            check_writable(array, labels[position])
    check_no_shared_memory(segment, labels.__getitem__)
    return tuple(segment)


def _parameter_stems(parameters: Mapping) -> frozenset[str]:
    """The letter stems of parameter names that end in a layer number: {'W', 'b'}."""
    return frozenset(stem for name in parameters for stem in [name.rstrip(_DIGITS)] if stem != name)


def _refuse_stray_gradients(
    mapping: Mapping, parameters: Mapping, stems: frozenset[str], label: str
) -> None:
    for key in mapping:
        name = key[len(GRAD_PREFIX) :] if key.startswith(GRAD_PREFIX) else None
        if name is None or name in parameters:
            continue
        stem = name.rstrip(_DIGITS)
        if stem != name and stem in stems:
            raise KeyError(
                f"{label} has {key!r} but there is no parameters[{name!r}]: {label} was made "
                f"for another model. Build it from these parameters (layers: {list(parameters)[:8]})."
            )


def _unit_stride(mapping: Mapping, key: str, array: object, rebinds: list) -> object:
    """``array``, or a C-contiguous copy to put in its place (recorded in ``rebinds``) when
    it is a writable strided or unaligned view the kernel cannot update in place."""
    if (
        isinstance(array, np.ndarray)
        and isinstance(mapping, MutableMapping)
        and array.flags.writeable
        and not (array.flags.c_contiguous and array.flags.aligned)
    ):
        copy = np.array(array, order="C")
        rebinds.append((mapping, key, copy))
        return copy
    return array


def _course_label(name: str, state_labels: list[str], position: int) -> str:
    if position == 0:
        return f"parameters[{name!r}]"
    container = "grads" if position == 1 else state_labels[position - 2]
    return f"{container}[{GRAD_PREFIX + name!r}]"


def _lookup(mapping: Mapping, key: str, label: str, name: str):
    try:
        return mapping[key]
    except KeyError:
        raise KeyError(
            f"{label} has no {key!r} for parameters[{name!r}]; the course keys it as "
            f"'d' + parameter name"
        ) from None
