"""The global gradient norm for clipping: deterministic, one read of the gradients.

Each layer is cut into fixed blocks of ``BLOCK`` elements from its own start, whatever the
thread count and however the gradients arrive (one flat buffer, runs of layers, or one
array per layer). Each block's sum of squares is taken in float64 in a fixed order (in
``lanes``, which vectorise) and all block sums, in layer order, are added by one fixed
reduction. So the norm has the same bits for 1 or 2 threads and for flat or per-layer
gradients, and a NaN or Inf anywhere makes it NaN or Inf: the non-finite check rides on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
from numba import types

from fastoptim.kernels.compiled import CompiledLoop
from fastoptim.kernels.lanes import sum_squares

BLOCK = 8192


def _block_sums_of_squares_body(loop):
    def block_sums_of_squares(grad, bounds, block_sums):
        # block b is grad[bounds[b]:bounds[b + 1]]; writes block_sums[b]
        for block in loop(block_sums.size):
            block_sums[block] = sum_squares(grad, bounds[block], bounds[block + 1], 1.0)

    return block_sums_of_squares


def block_bounds(layer_sizes: Sequence[int]) -> np.ndarray:
    """The block boundaries of layers laid out one after the other: every layer cut into
    ``BLOCK``-element blocks from its own start (an empty layer has none), plus the end."""
    bounds: list[int] = []
    offset = 0
    for size in layer_sizes:
        bounds.extend(range(offset, offset + size, BLOCK))
        offset += size
    bounds.append(offset)
    return np.array(bounds, dtype=np.int64)


def reduce_block_sums(block_sums: np.ndarray) -> float:
    """The sum of all block sums, in numpy's fixed pairwise order."""
    return float(np.add.reduce(block_sums))


def blocks(size: int) -> int:
    """How many fixed blocks one layer of ``size`` elements makes."""
    return -(-size // BLOCK)


def _signature(dtype: np.dtype):
    array = types.Array(numba.from_dtype(np.dtype(dtype)), 1, "C", readonly=True)
    bounds = types.Array(types.int64, 1, "C", readonly=True)
    return types.none(array, bounds, types.Array(types.float64, 1, "C"))


# the reduction: block_sums_of_squares(grad, bounds, block_sums)
block_sums_of_squares = CompiledLoop(_block_sums_of_squares_body, _signature)


def global_norm(
    pieces: Sequence[tuple[np.ndarray, np.ndarray]], scratch: np.ndarray | None = None
) -> float:
    """sqrt of the sum of every element squared, in float64, for ``(grad, bounds)`` pieces
    in layer order: ``grad`` a 1-D C-contiguous float array, ``bounds`` its ``block_bounds``.

    ``scratch``: a float64 array with room for every block, owned by the caller so that a
    step allocates nothing (made here if omitted).
    """
    total_blocks = sum(bounds.size - 1 for _, bounds in pieces)
    if scratch is None:
        scratch = np.empty(total_blocks, dtype=np.float64)
    return math.sqrt(reduce_block_sums(block_sums(pieces, scratch[:total_blocks])))


def block_sums(pieces: Sequence[tuple[np.ndarray, np.ndarray]], out: np.ndarray) -> np.ndarray:
    """Each block's sum of squares, in layer order, into ``out`` (as long as the total
    number of blocks): the part of the norm that several processes can split."""
    start = 0
    for grad, bounds in pieces:
        stop = start + bounds.size - 1
        block_sums_of_squares.variant_for(grad)(grad, bounds, out[start:stop])
        start = stop
    return out


def of_arrays(arrays: Sequence[np.ndarray]) -> float:
    """The norm of ``arrays`` taken as layers."""
    return global_norm([(array, block_bounds([array.size])) for array in arrays])
