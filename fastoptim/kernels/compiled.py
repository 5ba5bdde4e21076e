"""CompiledLoop: a loop body compiled lazily as a parallel kernel and a serial twin, with
exactly one signature per dtype, then closed to further compilation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from fastoptim import config


class CompiledLoop:
    """A loop body ``make_body(loop)`` compiled on first use for each (dtype, parallel) pair.

    ``make_body`` receives ``numba.prange`` or ``range`` and returns the function to compile.
    Passing the loop in a closure gives the parallel and serial variants different entries
    in Numba's on-disk cache, whose key ignores the ``parallel`` option. ``signature(dtype)``
    gives the one explicit signature of each dtype: a stray Python float or a read-only
    array can never trigger a recompile mid-training.
    """

    def __init__(self, make_body: Callable, signature: Callable[[np.dtype], Any]) -> None:
        self.make_body = make_body
        self.signature = signature
        self._compiled: dict[tuple[np.dtype, bool], numba.core.dispatcher.Dispatcher] = {}

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

    def variant_for(self, array: np.ndarray):
        """The variant for ``array``: its dtype, serial below ``config.SERIAL_BELOW``
        elements (threads cost more than they bring there)."""
        key = (array.dtype, array.size >= config.SERIAL_BELOW)
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
