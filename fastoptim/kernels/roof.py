"""Roof kernels: the memory traffic of an update with trivial arithmetic.

A kernel cannot stream its arrays faster than these: they read and write exactly what an
update with one state buffer (Momentum, SGD, Adagrad, RMSprop: 3 reads, 2 writes), two
(Adam, AdamW: 4 reads, 3 writes) or three (AMSGrad: 5 reads, 4 writes) does, and add
numbers; ``STORED_FOR_STATES`` the same with 16-bit state (bfloat16; Adam: 20 bytes per
float32 element instead of 28) or 8-bit state (int8: 16 bytes; its block scales, 1/64 of a
byte per element and state, left out). The bench reports every update's time as a percentage of its roof.
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


def _stored_roof_body(n_state: int, code: type):
    """The roof of an update with ``n_state`` state buffers of ``code`` (uint16 for
    bfloat16 state, uint8 for int8): read and write each, with an integer add."""
    one = code(1)

    def make_body(loop):
        def stored_roof_1(param, grad, s0):
            for i in loop(param.size):
                s0[i] = s0[i] + one
                param[i] = param[i] + grad[i]

        def stored_roof_2(param, grad, s0, s1):
            for i in loop(param.size):
                s0[i] = s0[i] + one
                s1[i] = s1[i] + one
                param[i] = param[i] + grad[i]

        def stored_roof_3(param, grad, s0, s1, s2):
            for i in loop(param.size):
                s0[i] = s0[i] + one
                s1[i] = s1[i] + one
                s2[i] = s2[i] + one
                param[i] = param[i] + grad[i]

        return (stored_roof_1, stored_roof_2, stored_roof_3)[n_state - 1]

    return make_body


def _stored_signature(n_state: int, code: type):
    def signature(dtype):
        scalar = numba.from_dtype(dtype)
        state = (types.Array(numba.from_dtype(np.dtype(code)), 1, "C"),) * n_state
        return types.none(types.Array(scalar, 1, "C"), types.Array(scalar, 1, "C"), *state)

    return signature


# the roof of an update with this many state buffers of this many bytes per element
STORED_FOR_STATES = {
    (n, np.dtype(code).itemsize): UpdateLoop(
        _stored_roof_body(n, code), _stored_signature(n, code), n, np.dtype(code).name
    )
    for n in (1, 2, 3)
    for code in (np.uint16, np.uint8)
}
