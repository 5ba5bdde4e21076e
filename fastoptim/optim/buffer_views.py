"""The views of an optimizer's buffers that its steps run on, made once (the buffers never
move): runs of neighbouring layers of one group for flat gradients, one view per layer for
a dict of gradients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from fastoptim import kernels
from fastoptim.flat import FlatParams
from fastoptim.kernels import UpdateLoop
from fastoptim.optim.blockwise import Int8Storage, code_dtype
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
    kernel's order of the state buffers, its loops by storage (``float`` and the state's
    own), where the kernel takes each piece's global index (bfloat16 state: its random
    bits follow it) the index of the first element, and int8 state's storage."""

    params: FlatParams
    state: Mapping[str, FlatParams]
    groups: Sequence[ResolvedGroup]
    order: StateOrder
    loops: Mapping[str, UpdateLoop | None]
    storage: str = "float"
    first_index: int = 0
    int8: Int8Storage | None = None
    ema: FlatParams | None = None  # the weight EMA, laid out like the parameters
    accumulated: FlatParams | None = None  # the sum of the gradients waiting, likewise

    def is_small(self, name: str) -> bool:
        """Whether layer ``name`` keeps float32 state under int8 storage."""
        return self.int8 is not None and name not in self.int8.quantized

    def views(
        self, names: Sequence[str], start: int, stop: int
    ) -> tuple[tuple, tuple, UpdateLoop | None]:
        """The state views of neighbouring layers ``names`` (buffer[start:stop]) in the
        kernel's order, the kernel's arguments after them (the weight EMA's range and the
        accumulated gradients' first, where there are those) and the loop to call."""
        states, tail, loop = self._storage_views(names, start, stop)
        extra = (self.ema, self.accumulated)
        ranges = tuple(flat.buffer[start:stop] for flat in extra if flat is not None)
        return states, (*ranges, *tail), loop

    def _storage_views(
        self, names: Sequence[str], start: int, stop: int
    ) -> tuple[tuple, tuple, UpdateLoop | None]:
        params, state, order, int8 = self.params, self.state, self.order, self.int8
        dtype = params.layout.dtype
        if int8 is not None and self.is_small(names[0]):
            small = int8.small_layout
            first, last = small.span(names[0]).start, small.span(names[-1]).stop
            in_range = {key: flat.buffer[first:last] for key, flat in int8.small.items()}
            return kernel_states(in_range, order, dtype), (), self.loops["float"]
        in_range = {key: flat.buffer[start:stop] for key, flat in state.items()}
        if int8 is not None:
            codes = tuple(  # a place-holder of the kernel's code dtype
                np.empty(0, code_dtype(k in int8.kernel_unsigned)) if key is None else in_range[key]
                for k, key in enumerate(order)
            )
            blocks = slice(int8.block_span[names[0]].start, int8.block_span[names[-1]].stop)
            scales = kernel_states(
                {key: scale[blocks] for key, scale in int8.scales.items()},
                order,
                np.dtype(np.float32),
            )
            tail = (*scales, int8.bounds(names), int8.block)
            return codes, tail, self.loops["int8"]
        states = kernel_states(in_range, order, dtype)
        if self.storage == "bfloat16":
            return states, (self.first_index + start,), self.loops["bfloat16"]
        return states, (), self.loops["float"]


def flat_runs(buffers: Buffers) -> list[FlatRun]:
    """The runs of neighbouring layers of one group (and one storage) in layout order,
    frozen ones left out."""
    layout = buffers.params.layout
    groups = buffers.groups
    group_of = _group_of(groups)
    runs: list[list[Any]] = []
    for name in layout.names:
        group = group_of[name]
        span = layout.span(name)
        if groups[group].frozen:
            continue
        kind = (group, buffers.is_small(name))
        if runs and runs[-1][0] == kind and runs[-1][3] == span.start:
            runs[-1][1].append(name)
            runs[-1][3] = span.stop
        else:
            runs.append([kind, [name], span.start, span.stop])
    made = []
    for (group, _), names, start, stop in runs:
        sizes = [layout.sizes[layout.index(name)] for name in names]
        states, tail, loop = buffers.views(names, start, stop)
        made.append(
            FlatRun(
                group,
                tuple(names),
                start,
                stop,
                start == 0 and stop == layout.size,
                buffers.params.buffer[start:stop],
                states,
                kernels.norm_block_bounds(sizes),
                tail,
                loop,
            )
        )
    return made


def layer_views(buffers: Buffers) -> list[LayerView]:
    """Every layer a step updates (frozen ones left out), in layout order."""
    params, groups = buffers.params, buffers.groups
    group_of = _group_of(groups)
    layers = []
    for name in params.layout.names:
        if groups[group_of[name]].frozen:
            continue
        param = params[params.prefix + name]
        span = params.layout.span(name)
        in_kernel_order, tail, loop = buffers.views((name,), span.start, span.stop)
        held = buffers.int8.small if buffers.is_small(name) else buffers.state  # type: ignore[union-attr]
        states = {key: flat[name].ravel() for key, flat in held.items()}
        flat_states = tuple(states.values())
        same_order = tuple(buffers.order) == tuple(states)
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
                tail,
                loop,
            )
        )
    return layers
