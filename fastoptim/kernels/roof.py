"""Roof kernels: the memory traffic of an update with trivial arithmetic.

A kernel cannot stream its arrays faster than these: they read and write exactly what an
update with one state buffer (Momentum, SGD, Adagrad, RMSprop: 3 reads, 2 writes), two
(Adam, AdamW: 4 reads, 3 writes) or three (AMSGrad: 5 reads, 4 writes) does, and add
numbers; ``STORED_FOR_STATES`` the same with 16-bit state (Adam: 20 bytes per float32
element instead of 28). The bench reports every update's time as a percentage of its roof.
"""

from typing import NamedTuple

import numba
import numpy as np
from numba import types

from fastoptim.kernels.elementwise import ElementwiseUpdate, UpdateLoop


class NoScalars(NamedTuple):
    """A roof kernel takes no scalars."""


@numba.njit(inline="always")
def adam_roof(p, g, exp_avg, exp_avg_sq):
    """The traffic of Adam, none of its arithmetic."""
    return p + g, exp_avg + g, exp_avg_sq + g


@numba.njit(inline="always")
def momentum_roof(p, g, velocity):
    """The traffic of Momentum, none of its arithmetic."""
    return p + g, velocity + g


@numba.njit(inline="always")
def amsgrad_roof(p, g, exp_avg, exp_avg_sq, max_exp_avg_sq):
    """The traffic of AMSGrad."""
    return p + g, exp_avg + g, exp_avg_sq + g, max_exp_avg_sq + g


amsgrad_roof_update = ElementwiseUpdate(amsgrad_roof, n_state=3, scalars=NoScalars)
adam_roof_update = ElementwiseUpdate(adam_roof, n_state=2, scalars=NoScalars)
momentum_roof_update = ElementwiseUpdate(momentum_roof, n_state=1, scalars=NoScalars)

# the roof of an update with this many state buffers
FOR_STATES = {1: momentum_roof_update, 2: adam_roof_update, 3: amsgrad_roof_update}


def _stored_roof_body(n_state: int):
    """The roof of an update with ``n_state`` 16-bit state buffers (bfloat16 state):
    read and write each as uint16, with an integer add."""

    def make_body(loop):
        def stored_roof_1(param, grad, s0):
            for i in loop(param.size):
                s0[i] = s0[i] + np.uint16(1)
                param[i] = param[i] + grad[i]

        def stored_roof_2(param, grad, s0, s1):
            for i in loop(param.size):
                s0[i] = s0[i] + np.uint16(1)
                s1[i] = s1[i] + np.uint16(1)
                param[i] = param[i] + grad[i]

        def stored_roof_3(param, grad, s0, s1, s2):
            for i in loop(param.size):
                s0[i] = s0[i] + np.uint16(1)
                s1[i] = s1[i] + np.uint16(1)
                s2[i] = s2[i] + np.uint16(1)
                param[i] = param[i] + grad[i]

        return (stored_roof_1, stored_roof_2, stored_roof_3)[n_state - 1]

    return make_body


def _stored_signature(n_state: int):
    def signature(dtype):
        scalar = numba.from_dtype(dtype)
        state = (types.Array(types.uint16, 1, "C"),) * n_state
        return types.none(types.Array(scalar, 1, "C"), types.Array(scalar, 1, "C"), *state)

    return signature


# the roof of an update with this many 16-bit state buffers
STORED_FOR_STATES = {
    n: UpdateLoop(_stored_roof_body(n), _stored_signature(n), n, "bfloat16") for n in (1, 2, 3)
}
