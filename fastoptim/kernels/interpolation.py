"""Interpolation between two buffers, as torch's ``lerp`` computes it, and the loops that
move, swap or add whole buffers in place (Schedule-Free's modes, the weight EMA, gradient
accumulation)."""

import numba
import numpy as np
from numba import types

from fastoptim.kernels.compiled import CompiledLoop


@numba.njit(inline="always")
def lerp(start, end, weight, complement):
    """``start + weight (end - start)`` as torch's ``lerp`` computes it: from ``end`` when
    ``|weight| >= 0.5``, so that weight 1 gives ``end`` exactly. ``complement`` is
    ``1 - weight``, a scalar argument (a float literal would make float32 loops float64)."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * complement


def _interpolate_body(loop):
    def interpolate(p, z, weight, complement):
        # p moves in place to lerp(p, z, weight)
        for i in loop(p.size):
            p[i] = lerp(p[i], z[i], weight, complement)

    return interpolate


def _swap_body(loop):
    def swap(a, b):
        # a and b exchange their values in place
        for i in loop(a.size):
            a[i], b[i] = b[i], a[i]

    return swap


def _add_into_body(loop):
    def add_into(total, addend):
        # total += addend, in place
        for i in loop(total.size):
            total[i] = total[i] + addend[i]

    return add_into


def _arrays(dtype):
    value = numba.from_dtype(np.dtype(dtype))
    return value, types.Array(value, 1, "C"), types.Array(value, 1, "C", readonly=True)


def _interpolate_signature(dtype):
    value, writable, readonly = _arrays(dtype)
    return types.none(writable, readonly, value, value)


def _swap_signature(dtype):
    _, writable, _ = _arrays(dtype)
    return types.none(writable, writable)


def _add_into_signature(dtype):
    _, writable, readonly = _arrays(dtype)
    return types.none(writable, readonly)


# interpolate(p, z, weight, 1 - weight): p = lerp(p, z, weight), 3 elements of traffic
interpolate = CompiledLoop(_interpolate_body, _interpolate_signature)
# swap(a, b): 4 elements of traffic, no temporary buffer
swap = CompiledLoop(_swap_body, _swap_signature)
# add_into(total, addend): total += addend, 3 elements of traffic
add_into = CompiledLoop(_add_into_body, _add_into_signature)
