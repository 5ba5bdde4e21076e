"""Turn what a caller passed into validated kernel segments ``(param, grad, *state)``.

A segment is a tuple of equal-length, C-contiguous 1-D arrays of one float dtype. A flat
update is one segment over the whole buffers; a plain-dict update is one segment per layer.
Everything here checks and never writes, so a caller can build every segment of a step
before the first byte changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import cast

import numpy as np

from fastoptim.dtypes import float_dtype, is_float_dtype
from fastoptim.flat import Layout, layout_difference

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

    The parameter and states must be writable, aligned, C-contiguous float32/float64
    arrays; the gradient and states must have exactly the parameter's shape and dtype, and
    no two of them may share memory (the kernel writes the parameter and states while it
    reads them all). A strided or unaligned gradient is copied once (the kernel needs unit
    stride); the rest are viewed in place.
    """
    # This runs for every layer on every step of a plain-dict update: one cheap test of the
    # common case first; anything else goes through the checks that say what is wrong.
    if type(param) is np.ndarray and is_float_dtype(param.dtype) and _fits(param, grad, states):
        arrays = (param, cast(np.ndarray, grad), *cast(Sequence[np.ndarray], states))
        check_no_shared_memory(arrays, describe)
        # _fits checked the gradient as layer_grad would: only its 1-D view is left
        return (param.ravel(), _kernel_grad(arrays[1]), *[a.ravel() for a in arrays[2:]])
    return _checked_layer_segment(param, grad, states, describe)


def check_no_shared_memory(arrays: Sequence[np.ndarray], describe: Describe) -> None:
    """Raise ``ValueError`` if two of ``arrays`` (param, grad, *state) overlap in memory.

    Arrays can only overlap when they hang off the same memory owner, which is cheap to
    find; only those pairs get numpy's exact overlap test.
    """
    # on every step's path: one pass, and the owners kept only when two are alike
    if len({id(memory_owner(array)) for array in arrays}) == len(arrays):
        return
    owners = [memory_owner(array) for array in arrays]
    for later in range(1, len(arrays)):
        for earlier in range(later):
            if owners[earlier] is owners[later] and np.shares_memory(
                arrays[earlier], arrays[later]
            ):
                raise ValueError(
                    f"{describe(later)} shares memory with {describe(earlier)}; the update "
                    "writes the parameter and its state in place while reading the gradient, "
                    "so none may overlap. Pass a copy, e.g. np.array(x)."
                )


def memory_owner(array: np.ndarray) -> object:
    """The object that owns ``array``'s memory: the end of its chain of bases."""
    owner: object = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    return owner


def layer_grad(grad: object, param: np.ndarray, describe: Describe) -> np.ndarray:
    """The 1-D gradient for a parameter already known to be valid (e.g. a FlatParams view)."""
    if type(grad) is np.ndarray and grad.dtype == param.dtype and grad.shape == param.shape:
        return _kernel_grad(grad)
    return _kernel_grad(_like(grad, param, describe, 1))


def _fits(param: np.ndarray, grad: object, states: Sequence[object]) -> bool:
    """True when every array is exactly what the kernel takes as it stands."""
    dtype, shape = param.dtype, param.shape
    if not (
        param.flags.carray  # C-contiguous, aligned and writeable
        and type(grad) is np.ndarray
        and grad.dtype == dtype
        and grad.shape == shape
    ):
        return False
    for state in states:
        if not (
            type(state) is np.ndarray
            and state.dtype == dtype
            and state.shape == shape
            and state.flags.carray
        ):
            return False
    return True


def _checked_layer_segment(
    param: object, grad: object, states: Sequence[object], describe: Describe
) -> Segment:
    checked_param = _array(param, describe, 0)
    if not is_float_dtype(checked_param.dtype):
        float_dtype(checked_param.dtype, describe(0))  # raises, saying which dtypes work
    grad_1d = layer_grad(grad, checked_param, describe)
    arrays = [checked_param, cast(np.ndarray, grad)]
    arrays += [_like(state, checked_param, describe, i) for i, state in enumerate(states, 2)]
    segment = [_in_place(checked_param, describe, 0), grad_1d]
    for position, state in enumerate(arrays[2:], start=2):
        # same dtype as the parameter, so only where it may be written remains to check
        segment.append(_in_place(state, describe, position))
    check_no_shared_memory(arrays, describe)
    return tuple(segment)


def _kernel_grad(grad: np.ndarray) -> np.ndarray:
    flat = grad.ravel()  # a view when C-contiguous, else a copy
    return flat if flat.flags.aligned else flat.copy()


def _in_place(array: np.ndarray, describe: Describe, position: int) -> np.ndarray:
    """The 1-D view of an array the kernel may update in place, after checking it."""
    flags = array.flags
    if not flags.writeable:
        check_writable(array, describe(position))  # raises
    if not flags.c_contiguous:
        raise ValueError(
            f"{describe(position)} is not C-contiguous, but the update writes to it in place; "
            "pass np.ascontiguousarray(x)."
        )
    if not flags.aligned:
        raise ValueError(
            f"{describe(position)} is not aligned in memory, but the update writes to it in "
            "place; pass an aligned copy, np.array(x)."
        )
    return array.ravel()


def _array(array: object, describe: Describe, position: int) -> np.ndarray:
    """``array`` as a base-class ndarray sharing its memory (np.matrix would stay 2-D)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{describe(position)} must be a numpy array; got {type(array).__name__}")
    return array if type(array) is np.ndarray else array.view(np.ndarray)


def _like(array: object, param: np.ndarray, describe: Describe, position: int) -> np.ndarray:
    array = _array(array, describe, position)
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
    """Raise ``ValueError``, saying what differs, unless a buffer of ``layout`` lines up
    with one of ``expected`` (``Layout.lines_up_with``: decided once per pair)."""
    if layout is expected or layout.lines_up_with(expected):
        return
    raise ValueError(layout_difference(layout, expected, label))


def grad_key_prefix(grads: Mapping, names: tuple[str, ...], allowed: tuple[str, ...]) -> str:
    """'' when ``grads`` is keyed like the parameters, 'd' when keyed the course way.

    Every layer of ``names`` needs a gradient; those of ``allowed`` (frozen layers too) may
    have one."""
    for prefix in ("", "d"):
        expected = {prefix + name for name in names}
        if expected <= grads.keys():
            permitted = expected if names is allowed else {prefix + name for name in allowed}
            extra = [key for key in grads if key not in permitted]
            if extra:
                raise KeyError(
                    f"grads has keys that are not gradients of any parameter: {extra[:8]}; "
                    "pass only the parameters' gradients."
                )
            return prefix
    missing = [name for name in names if name not in grads and "d" + name not in grads]
    raise KeyError(
        f"grads is missing the gradient of {missing[:8]}; key gradients like the parameters "
        "('W1') or the course way ('dW1'), one for every parameter."
    )
