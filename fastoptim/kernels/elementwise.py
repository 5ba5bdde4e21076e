"""ElementwiseKernel: compile one loop body as a parallel kernel and a serial twin, lazily,
with exactly one signature per dtype."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numba
import numpy as np
from numba import types

from fastoptim import config

Segment = Sequence[np.ndarray]


class ElementwiseKernel:
    """A loop body ``make_body(loop)`` compiled on first use for each (dtype, parallel) pair.

    ``make_body`` receives ``numba.prange`` or ``range`` and returns the kernel function
    ``f(param, grad, *state, *scalars) -> None``. Passing the loop in a closure gives the
    parallel and serial variants different entries in Numba's on-disk cache, whose key
    ignores the ``parallel`` option.

    Every variant is compiled for one explicit signature (param and state: writable 1-D
    C arrays; grad: a read-only 1-D C array, which writable grads also match; scalars of the
    buffer's dtype) and then closed to further compilation, so a stray Python float or a
    read-only gradient can never trigger a recompile mid-training.
    """

    def __init__(self, make_body: Callable, n_state: int, n_scalars: int) -> None:
        self.make_body = make_body
        self.n_state = n_state
        self.n_scalars = n_scalars
        self._compiled: dict[tuple[np.dtype, bool], numba.core.dispatcher.Dispatcher] = {}

    def signature(self, dtype: np.dtype):
        scalar = numba.from_dtype(dtype)
        writable = types.Array(scalar, 1, "C")
        read_only = types.Array(scalar, 1, "C", readonly=True)
        state = (writable,) * self.n_state
        return types.none(writable, read_only, *state, *(scalar,) * self.n_scalars)

    def variant(self, dtype: np.dtype, parallel: bool):
        """The compiled dispatcher for ``dtype`` (parallel or serial), compiling on first use."""
        key = (np.dtype(dtype), parallel)
        dispatcher = self._compiled.get(key)
        if dispatcher is None:
            dispatcher = self._compile(*key)
            self._compiled[key] = dispatcher
        return dispatcher

    def compiled_variants(self) -> dict[tuple[np.dtype, bool], numba.core.dispatcher.Dispatcher]:
        """The variants compiled so far, keyed by (dtype, parallel)."""
        return dict(self._compiled)

    def run(self, segments: Sequence[Segment], values: Sequence[float]) -> None:
        """Call the kernel once per segment ``(param, grad, *state)``.

        ``values`` are the scalar arguments as Python floats, computed in float64. Numba
        unboxes them straight into the variant's scalar type, rounding to nearest as
        ``np.float32(value)`` does, so each segment computes in its own dtype without a numpy
        scalar being made per step. The arrays must already be validated 1-D C-contiguous
        arrays of one dtype per segment: this is the hot path, it checks nothing.
        """
        for segment in segments:
            self.variant_for(segment[0])(*segment, *values)

    def run_pieces(
        self,
        pieces: Sequence[tuple[int, object, Segment, object]],
        table: Sequence[Sequence[float]],
    ) -> None:
        """``run`` for segments of several groups: piece ``(group, _, segment, _)`` is
        called with the scalars ``table[group]``."""
        for group, _, segment, _ in pieces:
            self.variant_for(segment[0])(*segment, *table[group])

    def variant_for(self, param: np.ndarray):
        """The variant ``run`` calls for ``param``: its dtype, serial below
        ``config.SERIAL_BELOW`` elements (threads cost more than they bring there)."""
        key = (param.dtype, param.size >= config.SERIAL_BELOW)
        return self._compiled.get(key) or self.variant(*key)

    def _compile(self, dtype: np.dtype, parallel: bool):
        body = self.make_body(numba.prange if parallel else range)
        # Numba's cache key ignores the options in _jit (only the closure tells the parallel
        # and serial variants apart): never cache a fastmath build, and clear __pycache__
        # after changing those options.
        cache = config.CACHE and not config.FASTMATH
        try:
            return self._jit(body, dtype, parallel, cache)
        except RuntimeError as error:
            if not cache or "cannot cache" not in str(error):
                raise
            return self._jit(body, dtype, parallel, cache=False)  # no writable cache dir

    def _jit(self, body: Callable, dtype: np.dtype, parallel: bool, cache: bool):
        fastmath: bool | set[str] = set(config.FASTMATH) or False
        # error_model="numpy": x / 0 gives inf or nan as in numpy, instead of a Python
        # ZeroDivisionError check that also stops LLVM from vectorising the loop.
        return numba.njit(
            self.signature(dtype),
            cache=cache,
            parallel=parallel,
            fastmath=fastmath,
            error_model="numpy",
        )(body)
