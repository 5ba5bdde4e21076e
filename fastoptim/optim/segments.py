"""Turn what a caller passed into validated kernel segments ``(param, grad, *state)``.

A segment is a tuple of equal-length, C-contiguous 1-D arrays of one float dtype. A flat
update is one segment over the whole buffers; a plain-dict update is one segment per layer.
Everything here checks and never writes, so a caller can build every segment of a step
before the first byte changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fastoptim.dtypes import float_dtype
from fastoptim.flat import Layout

Segment = tuple[np.ndarray, ...]


def check_writable(array: np.ndarray, label: str) -> np.ndarray:
    """``array`` itself, after checking the update may write to it."""
    if not array.flags.writeable:
        raise ValueError(
            f"{label} is read-only, but the update writes to it in place; "
            "pass a writable array (e.g. np.array(x))."
        )
    return array


def writable_1d(array: object, label: str) -> np.ndarray:
    """A 1-D view of a parameter or state array that the kernel will update in place."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{label} must be a numpy array; got {type(array).__name__}")
    float_dtype(array.dtype, label)
    check_writable(array, label)
    if not array.flags.c_contiguous:
        raise ValueError(
            f"{label} is not C-contiguous, but the update writes to it in place; "
            "pass np.ascontiguousarray(x)."
        )
    return array.ravel()


def matching_1d(array: object, label: str, param: np.ndarray, param_label: str) -> np.ndarray:
    """``array`` as a 1-D C array after checking it has the dtype and shape of ``param``
    (whose dtype is already known to be supported)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{label} must be a numpy array; got {type(array).__name__}")
    if array.dtype != param.dtype:
        float_dtype(array.dtype, label)  # says which dtypes work, if that is the problem
        raise TypeError(
            f"{label} is {array.dtype} but {param_label} is {param.dtype}; "
            f"convert it with .astype(np.{param.dtype.name})."
        )
    if array.shape != param.shape:
        raise ValueError(
            f"{label} has shape {array.shape} but {param_label} has shape {param.shape}; "
            "they must match exactly (no broadcasting)."
        )
    # ravel views a C-contiguous array and copies a strided one (a strided gradient is
    # copied once here; the kernel needs unit stride).
    return array.ravel()


def layer_segment(
    param: np.ndarray,
    param_label: str,
    grad: object,
    grad_label: str,
    states: Sequence[tuple[object, str]],
) -> Segment:
    """One validated segment for one layer: its parameter, gradient and state arrays."""
    flat_param = writable_1d(param, param_label)
    flat_grad = matching_1d(grad, grad_label, param, param_label)
    flat_states = []
    for state, state_label in states:
        matching_1d(state, state_label, param, param_label)
        flat_states.append(writable_1d(state, state_label))
    return (flat_param, flat_grad, *flat_states)


def check_same_layout(layout: Layout, expected: Layout, label: str) -> None:
    """Raise ``ValueError`` if ``layout`` differs from ``expected``."""
    if layout is expected or layout == expected:
        return
    raise ValueError(
        f"{label} was built for another layout ({layout}) than the parameters ({expected}); "
        "make it from the parameters, e.g. params.zeros_like(prefix='d')."
    )
