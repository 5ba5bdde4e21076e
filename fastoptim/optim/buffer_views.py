"""The views of an optimizer's buffers that its steps run on, made once (the buffers never
move): runs of neighbouring layers of one group for flat gradients, one view per layer for
a dict of gradients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from fastoptim import kernels
from fastoptim.flat import FlatParams
from fastoptim.optim.groups import ResolvedGroup
from fastoptim.optim.step_records import FlatRun, LayerView

StateOrder = Sequence[str | None]


def kernel_states(
    arrays: Mapping[str, np.ndarray], order: StateOrder, dtype: np.dtype
) -> tuple[np.ndarray, ...]:
    """The state arrays in the kernel's ``order``, a zero-length place-holder where the
    options keep no buffer (None: RMSprop without momentum)."""
    absent = np.empty(0, dtype=next(iter(arrays.values())).dtype if arrays else dtype)
    return tuple(absent if key is None else arrays[key] for key in order)


def _group_of(groups: Sequence[ResolvedGroup]) -> dict[str, int]:
    return {name: i for i, group in enumerate(groups) for name in group.names}


class Buffers(NamedTuple):
    """What the views are views of: an optimizer's parameters and state, its groups, the
    kernel's order of the state buffers, and, where the kernel takes each piece's global
    index (bfloat16 state: its random bits follow it), the index of the first element."""

    params: FlatParams
    state: Mapping[str, FlatParams]
    groups: Sequence[ResolvedGroup]
    order: StateOrder
    first_index: int | None = None


def flat_runs(buffers: Buffers) -> list[FlatRun]:
    """The runs of neighbouring layers of one group in layout order, frozen ones left out."""
    params, state, groups, order, first_index = buffers
    layout = params.layout
    group_of = _group_of(groups)
    runs: list[list[Any]] = []
    for name in layout.names:
        group = group_of[name]
        span = layout.span(name)
        if groups[group].frozen:
            continue
        if runs and runs[-1][0] == group and runs[-1][3] == span.start:
            runs[-1][1].append(name)
            runs[-1][3] = span.stop
        else:
            runs.append([group, [name], span.start, span.stop])
    made = []
    for group, names, start, stop in runs:
        in_range = {key: flat.buffer[start:stop] for key, flat in state.items()}
        sizes = [layout.sizes[layout.index(name)] for name in names]
        made.append(
            FlatRun(
                group,
                tuple(names),
                start,
                stop,
                start == 0 and stop == layout.size,
                params.buffer[start:stop],
                kernel_states(in_range, order, layout.dtype),
                kernels.norm_block_bounds(sizes),
                () if first_index is None else (first_index + start,),
            )
        )
    return made


def layer_views(buffers: Buffers) -> list[LayerView]:
    """Every layer a step updates (frozen ones left out), in layout order."""
    params, state, groups, order, first_index = buffers
    group_of = _group_of(groups)
    layers = []
    for name in params.layout.names:
        if groups[group_of[name]].frozen:
            continue
        param = params[params.prefix + name]
        states = {key: flat[name].ravel() for key, flat in state.items()}
        flat_states = tuple(states.values())
        in_kernel_order = kernel_states(states, order, params.layout.dtype)
        same_order = tuple(order) == tuple(states)
        layers.append(
            LayerView(
                group_of[name],
                name,
                (name,),
                param,
                param.ravel(),
                flat_states,
                flat_states if same_order else in_kernel_order,
                kernels.norm_block_bounds([param.size]),
                () if first_index is None else (first_index + params.layout.span(name).start,),
            )
        )
    return layers
