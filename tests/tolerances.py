"""How close fastoptim must be to the float64 reference, and why."""

from __future__ import annotations

import numpy as np

# float64: Adam folds its bias corrections into two scalars, so each step may differ from
# the reference by a few ulp (~1e-16 relative). Over 100 steps that stays far below 1e-12.
FLOAT64_RTOL = 1e-12

# float32: each step computes every element with at most 8 float32 roundings of relative
# size u = 2**-24 (Adam, the longest: two roundings per moment, sqrt, scale, add, divide,
# multiply, subtract, and its scalars cast to float32 once), each relative to the magnitude
# of the operands it combines: for a parameter, the parameter and its per-step change; for
# a state, the state and the gradient (or its square) it averages. Errors add up at most
# linearly in the number of steps, so after `steps` steps an element is within
# 8 * steps * u * scale of the float64 value, `scale` being the largest operand magnitude.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
FLOAT32_ROUNDINGS_PER_STEP = 8


# Arrays smaller than this are compared together in one concatenated pass.
_BATCH_BELOW = 4096


def _batches(expected) -> list[list[str]]:
    sizes = {key: np.size(value) for key, value in expected.items()}
    small = [key for key, size in sizes.items() if 0 < size < _BATCH_BELOW]
    large = [[key] for key, size in sizes.items() if size >= _BATCH_BELOW]
    return large + ([small] if small else [])


def _joined(arrays, keys) -> np.ndarray:
    if len(keys) == 1:
        return np.ravel(arrays[keys[0]])
    return np.concatenate([np.ravel(arrays[key]) for key in keys])


def assert_matches_reference(actual, expected, steps: int, label: str, operand_scale) -> None:
    """Compare dicts of arrays key by key (small arrays batched into one pass).

    ``operand_scale(key)`` gives the largest operand magnitude other than the value itself.
    """
    for keys in _batches(expected):
        dtype = np.asarray(actual[keys[0]]).dtype
        rtol = (
            FLOAT64_RTOL
            if dtype == np.float64
            else (FLOAT32_ROUNDINGS_PER_STEP * steps * FLOAT32_UNIT_ROUNDOFF)
        )
        scales = [max(float(np.max(np.abs(expected[k]))), operand_scale(k)) for k in keys]
        want, got = _joined(expected, keys), _joined(actual, keys)
        scale = (
            scales[0] if len(keys) == 1 else np.repeat(scales, [np.size(expected[k]) for k in keys])
        )
        if (np.abs(got - want) <= rtol * (scale + np.abs(want))).all():
            continue
        for key, key_scale in zip(keys, scales, strict=True):  # only now pay for the report
            np.testing.assert_allclose(
                actual[key],
                expected[key],
                rtol=rtol,
                atol=rtol * key_scale,
                err_msg=f"{label}: {key}",
            )


def assert_bit_identical(actual, expected, label: str) -> None:
    """Compare dicts of arrays for exact equality (small arrays batched into one pass)."""
    for keys in _batches(expected):
        if np.array_equal(_joined(actual, keys), _joined(expected, keys), equal_nan=True):
            continue
        for key in keys:  # only now pay for the report
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=f"{label}: {key}")
        raise AssertionError(f"{label}: arrays differ")
