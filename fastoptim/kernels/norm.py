"""The global gradient norm for clipping: deterministic, one read of the gradients.

The buffer is cut into fixed blocks of ``BLOCK`` elements, whatever the thread count; each
block's sum of squares is taken in float64 in a fixed order (four interleaved partial sums,
for speed) and the block sums are added serially. So the norm has the same bits for 1 or
2 threads, and a NaN or Inf anywhere makes it NaN or Inf: the non-finite check rides on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
from numba import types

from fastoptim.kernels.elementwise import ElementwiseKernel

BLOCK = 8192


def _block_sums_of_squares_body(loop):
    def block_sums_of_squares(grad, block_sums):
        n = grad.size
        for block in loop(block_sums.size):
            start = block * BLOCK
            stop = min(n, start + BLOCK)
            s0 = s1 = s2 = s3 = 0.0
            i = start
            while i + 4 <= stop:
                g0 = np.float64(grad[i])
                g1 = np.float64(grad[i + 1])
                g2 = np.float64(grad[i + 2])
                g3 = np.float64(grad[i + 3])
                s0 += g0 * g0
                s1 += g1 * g1
                s2 += g2 * g2
                s3 += g3 * g3
                i += 4
            while i < stop:
                g = np.float64(grad[i])
                s0 += g * g
                i += 1
            block_sums[block] = (s0 + s1) + (s2 + s3)

    return block_sums_of_squares


def blocks(size: int) -> int:
    """How many fixed blocks ``size`` elements make."""
    return -(-size // BLOCK)


class GlobalNorm(ElementwiseKernel):
    """``global_norm(arrays)``: the 2-norm of all arrays taken together, in float64."""

    def __init__(self) -> None:
        super().__init__(_block_sums_of_squares_body, n_state=0, n_scalars=0)

    def signature(self, dtype: np.dtype):
        array = types.Array(numba.from_dtype(np.dtype(dtype)), 1, "C", readonly=True)
        return types.none(array, types.Array(types.float64, 1, "C"))

    def global_norm(self, arrays: Sequence[np.ndarray], scratch: np.ndarray | None = None) -> float:
        """sqrt of the sum of every element squared (1-D C-contiguous float arrays).

        ``scratch``: a float64 array of at least ``blocks(size)`` elements for the largest
        array, owned by the caller so that a step allocates nothing (made here if omitted).
        """
        if scratch is None:
            scratch = np.empty(max([1, *(blocks(a.size) for a in arrays)]), dtype=np.float64)
        total = 0.0
        for array in arrays:
            block_sums = scratch[: blocks(array.size)]
            self.variant_for(array)(array, block_sums)
            total += float(np.add.reduce(block_sums))  # numpy's fixed pairwise order
        return math.sqrt(total)


norm = GlobalNorm()
