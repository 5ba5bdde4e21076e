"""The floating-point dtypes fastoptim computes in, and the error for every other dtype."""

from __future__ import annotations

import numpy as np

SUPPORTED_DTYPES: tuple[np.dtype, ...] = (np.dtype(np.float32), np.dtype(np.float64))
_SUPPORTED_SET = frozenset(SUPPORTED_DTYPES)


def is_float_dtype(dtype: np.dtype) -> bool:
    """True for float32 and float64."""
    return dtype in _SUPPORTED_SET


def float_dtype(dtype: object, what: str) -> np.dtype:
    """Return ``dtype`` as a numpy dtype if it is float32 or float64, else raise ``TypeError``.

    ``what`` names the argument or layer in the message, e.g. ``"parameters['W1']"``.
    """
    try:
        resolved = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        resolved = None
    if resolved not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{what} has dtype {dtype}; fastoptim computes in float32 or float64 only. "
            f"Convert it first, e.g. array.astype(np.float32)."
        )
    return resolved
