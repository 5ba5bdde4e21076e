"""Sums in lanes: float64 sums that vectorise and keep their bits on any machine.

A float sum in one accumulator is a chain of dependent adds that LLVM may not reorder
(it would change the bits), so it runs one element at a time. Here element ``k`` of every
``LANES``-element chunk of a row adds into lane ``k``: the adds of one chunk are
independent of each other, so the loop over a chunk vectorises like an elementwise update,
and the order of every lane's adds is fixed by the program, not by the vector width or the
thread count. ``fold`` then adds the lanes pairwise in a fixed order.
"""

from __future__ import annotations

import numba
import numpy as np

LANES = 256  # a power of two; 2 KiB of float64 per set of lanes stays in L1


@numba.njit(inline="always")
def new_lanes(sets):
    """``sets`` sets of zeroed lanes, one after the other in one float64 array."""
    return np.zeros(sets * LANES)


@numba.njit(inline="always")
def fold(lanes):
    """The sum of ``lanes`` (a power-of-two count), pairwise in a fixed order; overwrites
    them."""
    width = lanes.size
    while width > 1:
        width //= 2
        for k in range(width):
            lanes[k] += lanes[k + width]
    return lanes[0]


@numba.njit(inline="always")
def add_squares(lanes, a, start, stop, scale):
    """Lane ``(i - start) % LANES`` += ``(scale a[i])**2`` in float64 for ``i`` in
    ``[start, stop)``."""
    for chunk in range(start, stop, LANES):
        end = min(chunk + LANES, stop)
        values = a[chunk:end]
        into = lanes[: end - chunk]
        for k in range(values.size):
            x = np.float64(values[k]) * scale
            into[k] += x * x


@numba.njit(inline="always")
def sum_squares(a, start, stop, scale):
    """sum of ``(scale a[i])**2`` over ``[start, stop)`` in float64, in lanes."""
    lanes = new_lanes(1)
    add_squares(lanes, a, start, stop, scale)
    return fold(lanes)
