"""Checks of a saved state_dict before it is loaded: what it lacks or holds too, and
arrays of the right shape, dtype and finiteness."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fastoptim.flat import layers_difference
from fastoptim.optim.blockwise import Int8Storage
from fastoptim.optim.state_dtypes import float_values


def check_state_dict(
    state_dict: object, algorithm: str, layout: dict, state_names: Sequence[str]
) -> None:
    """Raise, saying what differs, unless ``state_dict`` was saved by ``algorithm`` over
    ``layout`` with exactly ``state_names``."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a dict; got {type(state_dict).__name__}")
    missing = {"algorithm", "hyperparameters", "t", "layout", "state"} - state_dict.keys()
    if missing:
        raise KeyError(f"state_dict is missing {sorted(missing)}; pass what state_dict() returned")
    if state_dict["algorithm"] != algorithm:
        raise ValueError(
            f"state_dict was saved by {state_dict['algorithm']!r}; this optimizer is {algorithm!r}"
        )
    difference = layers_difference(state_dict["layout"], layout)
    if difference is not None:
        raise ValueError(
            f"state_dict was saved for other parameters: {difference}; load it into an "
            "optimizer over the same parameters"
        )
    state = state_dict["state"]
    if not isinstance(state, Mapping) or set(state) != set(state_names):
        raise KeyError(
            f"state_dict['state'] must hold exactly {list(state_names)}; "
            f"{holds(state, state_names)}"
        )
    for key in state_names:
        if not isinstance(state[key], Mapping) or set(state[key]) != set(layout["names"]):
            raise KeyError(
                f"state_dict['state'][{key!r}] must hold one array per layer; "
                f"{holds(state[key], layout['names'])}"
            )


def holds(found: object, expected: Sequence[str]) -> str:
    """What a saved mapping holds against what it should: the first missing and extra keys."""
    if not isinstance(found, Mapping):
        return f"it is a {type(found).__name__}"
    missing = [key for key in expected if key not in found]
    extra = [key for key in found if key not in expected]
    parts = ([f"it lacks {missing[:4]}"] if missing else []) + (
        [f"it has {extra[:4]} too"] if extra else []
    )
    return " and ".join(parts)


def checked_state_array(
    array: object, label: str, target: np.ndarray, state_dtype: str
) -> np.ndarray:
    """``array`` as an ndarray, after checking it can replace ``target`` (a buffer of
    ``state_dtype``)."""
    array = np.asarray(array)
    if array.shape != target.shape or array.dtype != target.dtype:
        raise ValueError(
            f"{label} is a {array.dtype} array of shape {array.shape}; "
            f"expected {target.dtype} of shape {target.shape}"
        )
    codes = state_dtype == "int8" and array.dtype.kind in "iu"  # int8 codes: always finite
    if not codes and not np.isfinite(float_values(array, state_dtype)).all():
        raise ValueError(f"{label} holds NaN or Inf; this state cannot continue training")
    return array


def checked_scales(state_dict: Mapping, storage: Int8Storage) -> dict[tuple, tuple]:
    """int8 state's saved block scales, checked against ``storage``: (target view, array)
    by (``'scales'``, state, layer)."""
    scales = state_dict.get("scales")
    if not isinstance(scales, Mapping) or set(scales) != set(storage.scales):
        raise KeyError(
            f"state_dict['scales'] must hold the block scales of {sorted(storage.scales)} "
            f"(int8 state); {holds(scales, sorted(storage.scales))}"
        )
    checked = {}
    for key, by_layer in scales.items():
        expected = sorted(storage.block_span)
        if not isinstance(by_layer, Mapping) or sorted(by_layer) != expected:
            raise KeyError(
                f"state_dict['scales'][{key!r}] must hold one array per quantized layer; "
                f"{holds(by_layer, expected)}"
            )
        for name, span in storage.block_span.items():
            target = storage.scales[key][span]
            label = f"state_dict['scales'][{key!r}][{name!r}]"
            checked["scales", key, name] = (
                target,
                checked_state_array(by_layer[name], label, target, "float32"),
            )
    return checked
