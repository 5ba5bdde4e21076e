"""The non-finite check: one read of a gradient buffer, in parallel, with an answer that
does not depend on the thread count."""

from __future__ import annotations

from collections.abc import Iterable

import numba
import numpy as np
from numba import types

from fastoptim.kernels.compiled import CompiledLoop

# A float is NaN or +-Inf exactly when all its exponent bits are set. The check reads the
# floats' bits as unsigned integers of the same width.
_BITS: dict[np.dtype, np.dtype] = {
    np.dtype(np.float32): np.dtype(np.uint32),
    np.dtype(np.float64): np.dtype(np.uint64),
}
_EXPONENT_MASK: dict[np.dtype, np.unsignedinteger] = {
    np.dtype(np.float32): np.uint32(0x7F80_0000),
    np.dtype(np.float64): np.uint64(0x7FF0_0000_0000_0000),
}


def _all_finite_body(loop):
    def all_finite(bits, exponent_mask):
        # (bits & mask) ^ mask is 0 only for NaN/Inf; min over all elements is an integer
        # reduction: it vectorises, and its answer is the same for any split into threads.
        smallest = exponent_mask
        for i in loop(bits.size):
            smallest = min(smallest, (bits[i] & exponent_mask) ^ exponent_mask)
        return smallest != 0

    return all_finite


def _signature(dtype: np.dtype):
    bits = numba.from_dtype(_BITS[np.dtype(dtype)])
    return types.boolean(types.Array(bits, 1, "C", readonly=True), bits)


# the reduction: bits_all_finite(bits, exponent_mask) -> bool
bits_all_finite = CompiledLoop(_all_finite_body, _signature)


def all_finite(arrays: Iterable[np.ndarray]) -> bool:
    """True when no array holds NaN or Inf (1-D C-contiguous float32/float64 arrays)."""
    for array in arrays:
        dtype = array.dtype
        if not bits_all_finite.variant_for(array)(array.view(_BITS[dtype]), _EXPONENT_MASK[dtype]):
            return False
    return True
