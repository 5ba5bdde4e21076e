"""How many threads the parallel kernels use, and what happens in a forked child."""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numba

from fastoptim import config


def get_num_threads() -> int:
    """The number of threads the parallel kernels use in the calling thread."""
    return numba.get_num_threads()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 <= n <= NUMBA_NUM_THREADS) for kernels run from the calling thread.

    Results are bit-identical whatever ``n`` is; only the speed changes.
    """
    limit = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and 1 <= n <= limit):
        raise ValueError(
            f"set_num_threads: n must be a whole number from 1 to {limit} "
            f"(NUMBA_NUM_THREADS; set it in the environment before import to allow more); got {n!r}"
        )
    numba.set_num_threads(int(n))


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the ``with`` block with ``n`` threads, then restore the previous count."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _serial_after_fork() -> None:
    # Numba's OpenMP thread pool does not survive fork(): a forked child that started a
    # parallel kernel would be terminated. Children of a process that imported fastoptim
    # (data-loader workers, for instance) run every kernel's serial twin instead, which
    # gives the same bits.
    config.SERIAL_BELOW = sys.maxsize


os.register_at_fork(after_in_child=_serial_after_fork)
