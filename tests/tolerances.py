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


class OperandScales:
    """The largest gradient and per-step parameter change seen so far (see tolerances.py)."""

    def __init__(self) -> None:
        self.grad = 0.0
        self.change: dict[str, float] = {}

    def update(self, grads, before, after) -> None:
        self.grad = max([self.grad, *(float(np.max(np.abs(g), initial=0)) for g in grads.values())])
        for key in after:
            change = float(np.max(np.abs(after[key] - before[key]), initial=0))
            self.change[key] = max(self.change.get(key, 0.0), change)


def compare_with_reference(fast, oracle, algorithm, dtype, t, scales) -> None:
    """Parameters and states of entry point ``fast`` against the float64 ``oracle`` after
    step ``t``: bit for bit where the algorithm promises it, else within the bounds above."""
    params, states = fast.current()
    ref_params, ref_states = oracle.current()
    assert list(params) == list(ref_params), "keys and their order are kept"
    assert all(params[key].dtype == dtype for key in ref_params)
    exact = algorithm.bit_identical_float64 and dtype == np.float64
    pairs = [(params, ref_params, lambda key: scales.change.get(key, 0.0))]
    for state, ref_state, power in zip(
        states, ref_states, algorithm.state_grad_powers, strict=True
    ):
        pairs.append((state, ref_state, lambda key, power=power: scales.grad**power))
    for actual, expected, operand_scale in pairs:
        if exact:
            assert_bit_identical(actual, expected, f"step {t}")
        else:
            assert_matches_reference(actual, expected, t, f"step {t}", operand_scale)
