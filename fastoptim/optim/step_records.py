"""The named records a step works with: what one kernel call updates, and the views of the
buffers made once per optimizer."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastoptim.kernels import UpdateLoop, new_record


class Piece(NamedTuple):
    """What one kernel call of a step updates: a layer, or a run of neighbouring layers of
    one group, with its checked 1-D arrays."""

    group: int  # index into the optimizer's groups
    names: tuple[str, ...]  # its layers, in layout order
    param: np.ndarray
    grad: np.ndarray
    states: tuple[np.ndarray, ...]  # in the kernel's order
    norm_bounds: np.ndarray  # block bounds of the gradient for the clipping norm
    arrays: tuple  # (param, grad, *states, *tail): the kernel's arguments before the scalars
    loop: UpdateLoop | None  # the kernel loop of its storage (None: passes of its own)

    @classmethod
    def of(
        cls,
        group: int,
        names: tuple[str, ...],
        param: np.ndarray,
        grad: np.ndarray,
        states: tuple[np.ndarray, ...],
        norm_bounds: np.ndarray,
        tail: tuple,
        loop: UpdateLoop | None,
    ) -> Piece:
        """The piece of these arrays, with ``arrays`` made from them and ``tail`` (the
        kernel's arguments after the states: see FlatRun)."""
        arrays = (param, grad, *states, *tail)
        return new_record(cls, (group, names, param, grad, states, norm_bounds, arrays, loop))


class FlatRun(NamedTuple):
    """A run of neighbouring layers of one group in the buffers (frozen layers left out)."""

    group: int
    names: tuple[str, ...]
    start: int  # the run is buffer[start:stop]
    stop: int
    whole: bool  # the run is the whole buffer
    param: np.ndarray  # views of that range
    states: tuple[np.ndarray, ...]  # in the kernel's order
    norm_bounds: np.ndarray
    # the kernel's arguments after the states: (start,) for bfloat16 state, (*scales,
    # bounds, block) for int8, () else
    tail: tuple
    loop: UpdateLoop | None  # the kernel loop of its storage (None: passes of its own)


class LayerView(NamedTuple):
    """One updated layer's views of the buffers."""

    group: int
    name: str
    names: tuple[str, ...]  # (name,), as a Piece names its layers
    param: np.ndarray  # shaped like the layer
    flat_param: np.ndarray  # 1-D
    flat_states: tuple[np.ndarray, ...]  # 1-D, in state order (as messages name them)
    kernel_states: tuple[np.ndarray, ...]  # 1-D, in the kernel's order (flat_states itself
    # when that is the same)
    norm_bounds: np.ndarray
    tail: tuple  # the kernel's arguments after the states, as FlatRun's
    loop: UpdateLoop | None  # the kernel loop of its storage (None: passes of its own)
