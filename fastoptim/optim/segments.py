"""Turn what a caller passed into validated kernel segments ``(param, grad, *state)``.

A segment is a tuple of equal-length, C-contiguous 1-D arrays of one float dtype. A flat
update is one segment over the whole buffers; a plain-dict update is one segment per layer.
Everything here checks and never writes, so a caller can build every segment of a step
before the first byte changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fastoptim.dtypes import float_dtype, is_float_dtype
from fastoptim.flat import Layout

Segment = tuple[np.ndarray, ...]


# Position of an array in a segment (0 param, 1 grad, 2... state) -> its name for messages.
# Labels are only formatted when an error is raised: the checks are on every step's path.
Describe = Callable[[int], str]


def check_writable(array: np.ndarray, label: str) -> np.ndarray:
    """``array`` itself, after checking the update may write to it."""
    if not array.flags.writeable:
        raise ValueError(
            f"{label} is read-only, but the update writes to it in place; "
            "pass a writable array (e.g. np.array(x))."
        )
    return array


def layer_segment(
    param: object, grad: object, states: Sequence[object], describe: Describe
) -> Segment:
    """One validated segment for one layer: its parameter, gradient and state arrays.

    The parameter and states must be writable C-contiguous float32/float64 arrays; the
    gradient and states must have exactly the parameter's shape and dtype. A strided
    gradient is copied once (the kernel needs unit stride); the rest are viewed in place.
    """
    if not isinstance(param, np.ndarray):
        raise TypeError(f"{describe(0)} must be a numpy array; got {type(param).__name__}")
    if not is_float_dtype(param.dtype):
        float_dtype(param.dtype, describe(0))  # raises, saying which dtypes work
    segment = [_writable(param, describe, 0), _like(grad, param, describe, 1).ravel()]
    for position, state in enumerate(states, start=2):
        # same dtype as the parameter, so only where it may be written remains to check
        segment.append(_writable(_like(state, param, describe, position), describe, position))
    return tuple(segment)


def _writable(array: np.ndarray, describe: Describe, position: int) -> np.ndarray:
    """The 1-D view of a writable C-contiguous array."""
    flags = array.flags
    if not flags.writeable:
        check_writable(array, describe(position))  # raises
    if not flags.c_contiguous:
        raise ValueError(
            f"{describe(position)} is not C-contiguous, but the update writes to it in place; "
            "pass np.ascontiguousarray(x)."
        )
    return array.ravel()


def _like(array: object, param: np.ndarray, describe: Describe, position: int) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{describe(position)} must be a numpy array; got {type(array).__name__}")
    if array.dtype != param.dtype:
        label = describe(position)
        float_dtype(array.dtype, label)  # says which dtypes work, if that is the problem
        raise TypeError(
            f"{label} is {array.dtype} but {describe(0)} is {param.dtype}; "
            f"convert it with .astype(np.{param.dtype.name})."
        )
    if array.shape != param.shape:
        raise ValueError(
            f"{describe(position)} has shape {array.shape} but {describe(0)} has shape "
            f"{param.shape}; they must match exactly (no broadcasting)."
        )
    return array


def check_same_layout(layout: Layout, expected: Layout, label: str) -> None:
    """Raise ``ValueError`` if ``layout`` differs from ``expected``."""
    if layout is expected or layout == expected:
        return
    raise ValueError(
        f"{label} was built for another layout ({layout}) than the parameters ({expected}); "
        "make it from the parameters, e.g. params.zeros_like(prefix='d')."
    )
