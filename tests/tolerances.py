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


def assert_matches_reference(
    actual, expected, steps: int, label: str, operand_scale: float = 0.0
) -> None:
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, label
    if expected.size == 0:
        return
    scale = max(float(np.max(np.abs(expected))), operand_scale)
    if actual.dtype == np.float64:
        rtol = FLOAT64_RTOL
    else:
        rtol = FLOAT32_ROUNDINGS_PER_STEP * steps * FLOAT32_UNIT_ROUNDOFF
    within = np.abs(actual - expected) <= rtol * (scale + np.abs(expected))
    if not within.all():  # only now pay for numpy's detailed report
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=label)
