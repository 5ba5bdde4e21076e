"""The non-finite check: one read of a gradient buffer, in parallel, with an answer that
does not depend on the thread count."""

from __future__ import annotations

from collections.abc import Iterable

import numba
import numpy as np
from numba import types

from fastoptim.kernels.elementwise import ElementwiseKernel


def _nan_if_nonfinite_body(loop):
    def nan_if_nonfinite(grad):
        # g - g is 0 for every finite g and NaN for NaN or +-Inf; a sum of zeros stays 0 and
        # a NaN anywhere makes it NaN, whatever order the threads add in. No branch: the loop
        # vectorises like the updates do.
        total = 0.0
        for i in loop(grad.size):
            g = grad[i]
            total += g - g
        return total

    return nan_if_nonfinite


class FiniteCheck(ElementwiseKernel):
    """``all_finite(arrays)``: whether every element of every array is finite."""

    def __init__(self) -> None:
        super().__init__(_nan_if_nonfinite_body, n_state=0, n_scalars=0)

    def signature(self, dtype: np.dtype):
        array = types.Array(numba.from_dtype(dtype), 1, "C", readonly=True)
        return types.float64(array)

    def all_finite(self, arrays: Iterable[np.ndarray]) -> bool:
        """True when no array holds NaN or Inf (1-D C-contiguous float arrays)."""
        return all(self.variant_for(array)(array) == 0.0 for array in arrays)


finite = FiniteCheck()
