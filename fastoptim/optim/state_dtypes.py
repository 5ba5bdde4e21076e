"""How an optimizer stores its state (``state_dtype=``): which dtypes work with which
parameters, what the buffers hold, and the explicit conversion of a saved state.

- ``"float32"`` / ``"float64"``: the parameters' own dtype (the default), as torch keeps it.
- ``"bfloat16"`` (float32 parameters): each state element in 16 bits, bfloat16 bit patterns
  in uint16 arrays, stochastically rounded on every store (kernels/bfloat16.py). Half the
  state's memory and traffic; the numbers are no longer torch's, but unbiased.
- ``"int8"`` (float32 parameters): 8-bit codes with one float32 scale per block of 256
  (optim/blockwise.py, kernels/int8.py); layers below 4096 elements keep float32 state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastoptim.kernels import bfloat16

# state_dtype -> (the parameter dtypes it works with, the dtype its buffers hold)
STATE_DTYPES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "float32": (("float32",), None),
    "float64": (("float64",), None),
    "bfloat16": (("float32",), "uint16"),
    "int8": (("float32",), "int8"),  # int8 codes for signed states, uint8 for unsigned ones
}
ROUNDING_SEED = 0  # the seed of the stochastic rounding's random bits (see step_keys)
# int8 state's block sizes (``block_size=``): powers of two that divide the clipping
# norm's blocks of 8192, so that a shard's cuts fall on both
BLOCK_SIZES = tuple(2**k for k in range(6, 14))
STORAGE_OPTIONS = ("state_dtype", "block_size")  # the options that decide how state is stored


def check_state_dtype_name(value: Any, name: str) -> str | None:
    """None (the parameters' dtype) or one of ``STATE_DTYPES``."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in STATE_DTYPES:
        raise ValueError(
            f"{name} must be one of {list(STATE_DTYPES)} (or None: the parameters' dtype); "
            f"got {value!r}"
        )
    return value


def check_block_size(value: Any, name: str) -> int | None:
    """None (256 for int8 state) or one of ``BLOCK_SIZES``."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or value not in BLOCK_SIZES
    ):
        raise ValueError(
            f"{name} must be a power of two from {BLOCK_SIZES[0]} to {BLOCK_SIZES[-1]} "
            f"(elements per int8 block; None: 256); got {value!r}"
        )
    return int(value)


def check_block_size_applies(block_size: int | None, state_dtype: str, algorithm: str) -> None:
    """Raise unless ``block_size`` is None or the state is int8 (the only blockwise one)."""
    if block_size is not None and state_dtype != "int8":
        raise ValueError(
            f"{algorithm}: block_size={block_size!r} applies to state_dtype='int8' only (its "
            f"blocks of codes); this optimizer's state_dtype is {state_dtype!r}: leave "
            "block_size out or use state_dtype='int8'"
        )


def resolved_state_dtype(value: str | None, param_dtype: np.dtype, algorithm: str) -> str:
    """The state dtype ``value`` stands for with parameters of ``param_dtype``; raises
    when the pair does not work, listing the pairs that do."""
    param_name = np.dtype(param_dtype).name
    if value is None:
        return param_name
    if param_name not in STATE_DTYPES[value][0]:
        works = [name for name, (params, _) in STATE_DTYPES.items() if param_name in params]
        raise ValueError(
            f"{algorithm}: state_dtype={value!r} does not work with {param_name} parameters; "
            f"with {param_name} parameters use state_dtype in {works}"
        )
    return value


def storage(state_dtype: str) -> str:
    """The kernel loop's storage for ``state_dtype`` (kernels/elementwise.py)."""
    return state_dtype if state_dtype in ("bfloat16", "int8") else "float"


def stored_dtype(state_dtype: str) -> np.dtype | None:
    """The dtype a state buffer holds, where it is not the parameters' (else None)."""
    held = STATE_DTYPES[state_dtype][1]
    return None if held is None else np.dtype(held)


def stored_values(values: np.ndarray | float, state_dtype: str) -> np.ndarray:
    """Float state values as the buffers of ``state_dtype`` hold them (bfloat16: rounded
    to nearest, once: a conversion, not a step)."""
    if state_dtype == "bfloat16":
        return bfloat16.encode_array(np.asarray(values, np.float32), bfloat16.ROUND_TO_NEAREST)
    return np.asarray(values, dtype=state_dtype)


def float_values(stored: np.ndarray, state_dtype: str) -> np.ndarray:
    """The float values of a state buffer of ``state_dtype``."""
    if state_dtype == "bfloat16":
        return bfloat16.decode_array(stored)
    return np.asarray(stored)


def rounding_keys(t: int, streams: int) -> tuple[int, ...]:
    """The keys of the random streams of step ``t`` (bfloat16 state)."""
    return bfloat16.step_keys(ROUNDING_SEED, t, streams)
