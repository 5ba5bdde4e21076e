"""The roof of an update made in several passes over memory (Adafactor's, LAMB's): the
same traffic, trivial arithmetic, no per-layer calls.

A layer factored into row and column means costs three passes (bytes per element, in the
parameters' itemsize ``b``): a sum over p and g (2b), a sum over g (b), and p += g (3b). A
layer with a full second moment v costs two: v += g with a sum over p (4b), then
p += g + v (4b). ``adafactor_roof`` runs them over one buffer for all factored layers and
one for the rest: a step cannot move those bytes faster. Its sums are fastmath in the
parameters' dtype, the cheapest arithmetic for their traffic (a roof need not keep bits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numba
import numpy as np

from fastoptim.flat.flat_params import aligned_zeros

FACTORED_TRAFFIC = 6  # elements moved per parameter element: p, g; g; p, g and p written
FULL_TRAFFIC = 8  # p, g, v and v written; p, g, v and p written
LAMB_TRAFFIC = 10  # p, g, m, v and m, v written; p, m, v and p written


@numba.njit(parallel=True, fastmath=True)
def _sum_of_two(a, b):
    total = a.dtype.type(0.0)
    for i in numba.prange(a.size):
        total += a[i] + b[i]
    return total


@numba.njit(parallel=True, fastmath=True)
def _sum_of_one(a):
    total = a.dtype.type(0.0)
    for i in numba.prange(a.size):
        total += a[i]
    return total


@numba.njit(parallel=True)
def _add(p, g):
    for i in numba.prange(p.size):
        p[i] += g[i]


@numba.njit(parallel=True, fastmath=True)
def _add_into_state(p, g, v):
    total = p.dtype.type(0.0)
    for i in numba.prange(p.size):
        v[i] += g[i]
        total += p[i]
    return total


@numba.njit(parallel=True, fastmath=True)
def _add_into_two_states(p, g, m, v):
    total = p.dtype.type(0.0)
    for i in numba.prange(p.size):
        m[i] += g[i]
        v[i] += g[i]
        total += p[i]
    return total


@numba.njit(parallel=True)
def _add_from_state(p, g, v):
    for i in numba.prange(p.size):
        p[i] += g[i] + v[i]


def traffic(shape: tuple[int, ...]) -> int:
    """Elements Adafactor moves per element of a layer of ``shape``."""
    return FACTORED_TRAFFIC if len(shape) >= 2 else FULL_TRAFFIC


def adafactor_roof(shapes: Sequence[tuple[int, ...]], dtype: np.dtype) -> Callable[[], None]:
    """A step moving the bytes of Adafactor's passes over layers of ``shapes``."""
    factored = sum(math.prod(s) for s in shapes if len(s) >= 2)
    full = sum(math.prod(s) for s in shapes if len(s) < 2)
    # written zeros: an array never written maps every page to one zero page, whose reads
    # come from cache
    p, g = aligned_zeros(factored, dtype), aligned_zeros(factored, dtype)
    q, h, v = (aligned_zeros(full, dtype) for _ in range(3))

    def step() -> None:
        if factored:
            _sum_of_two(p, g)
            _sum_of_one(g)
            _add(p, g)
        if full:
            _add_into_state(q, h, v)
            _add_from_state(q, h, v)

    return step


def lamb_traffic(shape: tuple[int, ...]) -> int:
    """Elements LAMB moves per element of a layer (of any shape)."""
    return LAMB_TRAFFIC


def lamb_roof(shapes: Sequence[tuple[int, ...]], dtype: np.dtype) -> Callable[[], None]:
    """A step moving the bytes of LAMB's two passes over layers of ``shapes``: the moments
    with a sum over p, then p from both moments."""
    size = sum(math.prod(s) for s in shapes)
    p, g, m, v = (aligned_zeros(size, dtype) for _ in range(4))

    def step() -> None:
        _add_into_two_states(p, g, m, v)
        _add_from_state(p, m, v)

    return step
