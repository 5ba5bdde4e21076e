"""How the course keys its dicts, shared by every drop-in: parameter ``'W1'`` has gradient
and state ``'dW1'``."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from functools import partial

import numpy as np

from fastoptim.flat import FlatParams
from fastoptim.optim.segments import Segment, check_same_layout, check_writable, layer_segment

GRAD_PREFIX = "d"


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

    One segment over the whole buffers when every argument is a FlatParams of one layout,
    else one per layer. Keys in ``grads`` and the states other than ``'d' + name`` are
    ignored, as the reference ignores them (course backward passes also return dA, dZ).
    """
    flat_states = [(state, label) for state, label in states if isinstance(state, FlatParams)]
    if (
        isinstance(parameters, FlatParams)
        and isinstance(grads, FlatParams)
        and len(flat_states) == len(states)
    ):
        for mapping, label in [(grads, "grads"), *flat_states]:
            check_same_layout(mapping.layout, parameters.layout, label)
        # a FlatParams buffer is always a C-contiguous 1-D float array: only writability varies
        return [
            (
                check_writable(parameters.buffer, "parameters"),
                grads.buffer,
                *(check_writable(state.buffer, label) for state, label in flat_states),
            )
        ]
    state_labels = [label for _, label in states]
    return [
        layer_segment(
            param,
            _lookup(grads, GRAD_PREFIX + name, "grads", name),
            [_lookup(state, GRAD_PREFIX + name, label, name) for state, label in states],
            partial(_course_label, name, state_labels),
        )
        for name, param in parameters.items()
    ]


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
