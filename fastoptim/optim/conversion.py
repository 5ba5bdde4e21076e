"""The explicit conversion of a saved optimizer state from one state dtype to another."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fastoptim.optim import blockwise
from fastoptim.optim.optimizer import OPTIMIZER_CLASSES
from fastoptim.optim.state_dtypes import (
    check_block_size,
    check_block_size_applies,
    check_state_dtype_name,
    float_values,
    resolved_state_dtype,
    stored_values,
)


def convert_state_dtype(
    state_dict: Mapping[str, Any], state_dtype: str, *, block_size: int | None = None
) -> dict[str, Any]:
    """A copy of an optimizer's ``state_dict`` with its state stored as ``state_dtype``
    (int8: in blocks of ``block_size``, None: 256): the explicit conversion
    ``load_state_dict`` asks for when the dtypes or block sizes differ.

    Stored values are decoded exactly (bfloat16 codes, int8 codes times their block
    scales); float values are then rounded to nearest bfloat16, or quantized to int8
    blocks, once. ``opt.load_state_dict(fastoptim.convert_state_dtype(saved,
    opt.state_dtype, block_size=opt.block_size))``.
    """
    check_state_dtype_name(state_dtype, "state_dtype")
    check_block_size(block_size, "block_size")
    algorithm = str(state_dict["algorithm"])
    hyperparameters = dict(state_dict["hyperparameters"])
    layout = state_dict["layout"]
    param_dtype = np.dtype(layout["dtype"])
    source = hyperparameters.get("state_dtype") or param_dtype.name
    resolved_state_dtype(state_dtype, param_dtype, algorithm)
    check_block_size_applies(block_size, state_dtype, algorithm)
    source_block = blockwise.block_elements(hyperparameters.get("block_size"))
    block = blockwise.block_elements(block_size)
    unsigned = _unsigned_states(algorithm, hyperparameters)
    source_scales = state_dict.get("scales", {}) if source == "int8" else {}
    state: dict[str, dict[str, np.ndarray]] = {}
    scales: dict[str, dict[str, np.ndarray]] = {}
    for key, arrays in state_dict["state"].items():
        state[key], scales[key] = {}, {}
        for name, array in arrays.items():
            if name in source_scales.get(key, {}):
                values = blockwise.layer_values(
                    array, np.asarray(source_scales[key][name]), key in unsigned, source_block
                )
            else:
                values = float_values(np.asarray(array), source)
            if state_dtype == "int8" and blockwise.quantizes(np.size(values)):
                codes, block_scales = blockwise.layer_codes(values, key in unsigned, block)
                state[key][name], scales[key][name] = codes, block_scales
            elif state_dtype == "int8":
                state[key][name] = np.asarray(values, np.float32)
            else:
                state[key][name] = stored_values(values, state_dtype)
    hyperparameters["state_dtype"] = state_dtype
    if "block_size" in hyperparameters or block_size is not None:
        hyperparameters["block_size"] = block_size
    converted = {**state_dict, "hyperparameters": hyperparameters, "state": state}
    converted.pop("scales", None)
    if state_dtype == "int8":
        converted["scales"] = scales
    return converted


def _unsigned_states(algorithm: str, hyperparameters: Mapping[str, Any]) -> frozenset[str]:
    """The states of ``algorithm`` with these settings that are never negative (int8 codes
    them as uint8)."""
    cls = OPTIMIZER_CLASSES.get(algorithm)
    if cls is None:
        raise ValueError(
            f"state_dict was saved by {algorithm!r}, which is not a fastoptim optimizer; "
            f"the optimizers are {sorted(OPTIMIZER_CLASSES)}"
        )
    declaration = cls.declaration
    settings = declaration.settings(**{k: v for k, v in hyperparameters.items() if k != "lr"})
    order = declaration.states(settings)
    if declaration.kernel is None:  # passes of its own: no int8 state
        return frozenset()
    kernel = declaration.kernel(settings)
    return frozenset(name for k, name in enumerate(order) if k in kernel.unsigned and name)
