"""A parameter's low-precision state in torch's format: what each state key holds, and the
explicit conversion between state dtypes.

- ``bfloat16``: each state tensor is a ``torch.bfloat16`` view of the uint16 buffer (the
  same bits): ``state[p]['exp_avg']`` reads like any bfloat16 tensor.
- ``int8``: a quantized parameter's state tensor is its int8 or uint8 codes, beside
  ``<key>_scales``, its float32 block scales; a parameter below 4096 elements keeps a
  float32 state tensor.

torch's ``load_state_dict`` casts floating state to the parameter's dtype before an
optimizer sees it, so the saved dtypes are read from the state dict itself, first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fastoptim.optim import Optimizer, blockwise, state_dtypes

SCALES = "_scales"  # the suffix of an int8 state's block scales


def keys(core: Optimizer, name: str, state_keys: tuple[str, ...]) -> tuple[str, ...]:
    """The tensors a parameter's state holds besides ``step``: those of ``state_keys`` its
    layer keeps (Adafactor's depend on its shape) and, for int8 state of a quantized
    parameter, their scales."""
    kept = core.layer_state_keys(name)
    state_keys = tuple(key for key in state_keys if key in kept)
    if core.int8 is not None and name in core.int8.quantized:
        return state_keys + tuple(key + SCALES for key in state_keys)
    return state_keys


def buffer_view(core: Optimizer, name: str, key: str) -> np.ndarray:
    """The buffer a state tensor of layer ``name`` views (codes, scales or values)."""
    if core.int8 is None:
        return core.state[key][name]
    if key.endswith(SCALES):
        state = key.removesuffix(SCALES)
        return core.int8.scales[state][core.int8.block_span[name]]
    return core.int8.target(key, name)


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor view of a state buffer: bfloat16 for uint16 codes."""
    tensor = torch.from_numpy(array)
    return tensor.view(torch.bfloat16) if array.dtype == np.uint16 else tensor


def expected_dtype(core: Optimizer, name: str, key: str) -> torch.dtype:
    """The torch dtype a saved state tensor must have to load without a conversion."""
    array = buffer_view(core, name, key)
    if array.dtype == np.uint16:
        return torch.bfloat16
    return torch.from_numpy(array[:0]).dtype


def write(target: np.ndarray, value: torch.Tensor) -> None:
    """Copy a checked state tensor into its buffer view (a bfloat16 one's bits exactly:
    torch's load casts it to float32 first, which is exact, and rounding back is too)."""
    if target.dtype == np.uint16:
        values = value.to(torch.float32).numpy()
        target[...] = state_dtypes.stored_values(values, "bfloat16")
    else:
        target[...] = value.numpy()


def converted(core: Optimizer, name: str, state_keys: tuple[str, ...], saved: dict) -> dict:
    """A parameter's saved state (any state dtype) as ``core`` stores it: decoded to float
    values, then encoded once (rounded to nearest bfloat16, or quantized)."""
    result = {k: v for k, v in saved.items() if not k.endswith(SCALES)}
    for key in state_keys:
        value = saved[key]
        if key + SCALES in saved:  # int8 codes
            unsigned = value.dtype == torch.uint8
            codes, scales = value.numpy(), saved[key + SCALES].numpy()
            block = blockwise.saved_block(codes.size, scales.size)
            values = blockwise.layer_values(codes, scales, unsigned, block)
        else:
            values = value.detach().to(torch.float32).numpy()
        if core.int8 is not None and name in core.int8.quantized:
            codes, scales = blockwise.layer_codes(
                values, key in core.int8.unsigned, core.int8.block
            )
            result[key], result[key + SCALES] = torch.from_numpy(codes), torch.from_numpy(scales)
        elif core.state_dtype == "bfloat16":
            result[key] = as_tensor(state_dtypes.stored_values(values, "bfloat16"))
        else:
            result[key] = torch.from_numpy(np.asarray(values, np.float32))
    return result


def mismatch(core: Optimizer, name: str, state_keys: tuple[str, ...], saved: Any) -> str | None:
    """What differs between a saved state's dtypes and how ``core`` stores it (None when
    it loads as it is)."""
    if not isinstance(saved, dict):
        return None  # the usual checks say what is wrong
    for key in keys(core, name, state_keys):
        value = saved.get(key)
        if not isinstance(value, torch.Tensor):
            if key.endswith(SCALES):
                return f"it has no {key!r} (this optimizer keeps state_dtype={core.state_dtype!r})"
            continue
        if value.dtype != expected_dtype(core, name, key):
            return (
                f"its {key!r} is {value.dtype}, but this optimizer keeps "
                f"state_dtype={core.state_dtype!r} ({expected_dtype(core, name, key)})"
            )
        if key.endswith(SCALES) and core.int8 is not None:
            span = core.int8.block_span[name]
            if value.numel() != span.stop - span.start:
                return (
                    f"its {key!r} holds {value.numel()} block scales, but this optimizer "
                    f"keeps int8 blocks of {core.int8.block} ({span.stop - span.start} scales)"
                )
    return None
