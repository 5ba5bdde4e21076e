"""Every algorithm through every entry point against the numpy reference, after every step."""

from __future__ import annotations

import numpy as np
import pytest
from registry import (
    ALGORITHMS,
    COURSE_ALGORITHMS,
    ENTRY_POINTS,
    LAYOUTS,
    Reference,
    entry_points_for,
    flat_entry_point,
    random_grads,
    random_parameters,
)
from tolerances import OperandScales, assert_bit_identical, compare_with_reference

STEPS = 100
# the torch-form variants run 100 steps against torch itself (test_torch_parity.py); here,
# across every layout and entry point, 30 steps keep the default run near five minutes
TORCH_FORM_STEPS = 30

MANY_LAYERS = "200 layers"


def _worth_running(algorithm, entry, layout) -> bool:
    """Every layout through every entry point, except the many-layers layout (whose numpy
    reference is slow): it runs through the per-layer paths it stresses and the course
    FlatParams (200 views of one buffer), not through the object API's flat forms, which
    see one buffer whatever the layers. It keeps the default run under five minutes."""
    per_layer = ("course dicts", "course FlatParams", "object API, dict grads")
    return layout != MANY_LAYERS or entry in per_layer


CASES = [
    pytest.param(algorithm, entry, layout, id=f"{algorithm.name}-{entry}-{layout}")
    for algorithm in ALGORITHMS
    for entry in entry_points_for(algorithm)
    for layout in LAYOUTS
    if _worth_running(algorithm, entry, layout)
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("algorithm", "entry", "layout"), CASES)
def test_every_step_matches_reference(algorithm, entry, layout, dtype):
    shapes = LAYOUTS[layout]
    initial = {k: v.astype(dtype) for k, v in random_parameters(shapes, seed=0).items()}
    hp = algorithm.hyperparameter_sets[0]
    oracle = Reference(algorithm, initial, hp)
    fast = ENTRY_POINTS[entry](algorithm, initial, hp)
    rng = np.random.default_rng(1)
    scales = OperandScales()
    for t in range(1, (STEPS if algorithm.course_update else TORCH_FORM_STEPS) + 1):
        grads = {k: v.astype(dtype) for k, v in random_grads(shapes, rng).items()}
        before = dict(oracle.current()[0])  # the reference rebinds: these stay the old arrays
        oracle.step(grads, t)
        fast.step(grads, t)
        scales.update(grads, before, oracle.current()[0])
        compare_with_reference(fast, oracle, algorithm, dtype, t, scales)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_every_hyperparameter_set_matches_reference(algorithm):
    shapes = LAYOUTS["size 100,003 (parallel)"]
    initial = random_parameters(shapes, seed=2)
    for hp in algorithm.hyperparameter_sets:
        oracle = Reference(algorithm, initial, hp)
        fast = ENTRY_POINTS[flat_entry_point(algorithm)](algorithm, initial, hp)
        rng = np.random.default_rng(3)
        for t in range(1, 11):
            grads = random_grads(shapes, rng)
            oracle.step(grads, t)
            fast.step(grads, t)
            compare_with_reference(fast, oracle, algorithm, np.float64, t, OperandScales())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_entry_points_are_bit_identical(algorithm, dtype):
    """Plain dicts, FlatParams and the object API run the same kernel: same bits."""
    shapes = {"W1": (300, 301), "b1": (300, 1), "W2": (1, 300), "b2": (1, 1), "scale": ()}
    initial = {k: v.astype(dtype) for k, v in random_parameters(shapes, seed=4).items()}
    hp = algorithm.hyperparameter_sets[0]
    runs = {
        name: ENTRY_POINTS[name](algorithm, initial, hp) for name in entry_points_for(algorithm)
    }
    rng = np.random.default_rng(5)
    for t in range(1, 31):
        grads = {k: v.astype(dtype) for k, v in random_grads(shapes, rng).items()}
        for run in runs.values():
            run.step(grads, t)
        first_name, first = next(iter(runs.items()))
        first_params, first_states = first.current()
        for name, run in runs.items():
            params, states = run.current()
            for key in first_params:
                np.testing.assert_array_equal(
                    params[key], first_params[key], err_msg=f"{name} vs {first_name}: {key}"
                )
                assert params[key].dtype == dtype
            for state, first_state in zip(states, first_states, strict=True):
                for key in first_state:
                    np.testing.assert_array_equal(
                        state[key], first_state[key], err_msg=f"{name}: {key}"
                    )


@pytest.mark.parametrize("algorithm", COURSE_ALGORITHMS, ids=lambda a: a.name)
def test_plain_dicts_may_mix_dtypes(algorithm):
    """Each layer gets its own dtype's scalars: the same bits as running it alone."""
    shapes = {"W1": (40, 30), "b1": (40, 1), "W2": (1, 40)}
    dtypes = {"W1": np.float32, "b1": np.float64, "W2": np.float32}
    initial = {k: v.astype(dtypes[k]) for k, v in random_parameters(shapes, seed=6).items()}
    hp = algorithm.hyperparameter_sets[1]
    mixed = ENTRY_POINTS["course dicts"](algorithm, initial, hp)
    alone = {k: ENTRY_POINTS["course dicts"](algorithm, {k: initial[k]}, hp) for k in shapes}
    rng = np.random.default_rng(7)
    for t in range(1, 11):
        grads = {k: v.astype(dtypes[k[1:]]) for k, v in random_grads(shapes, rng).items()}
        mixed.step(grads, t)
        for name, run in alone.items():
            run.step({"d" + name: grads["d" + name]}, t)
    params, states = mixed.current()
    for name, run in alone.items():
        alone_params, alone_states = run.current()
        assert params[name].dtype == dtypes[name]
        assert_bit_identical({name: params[name]}, alone_params, f"{name} after 10 steps")
        for state, alone_state in zip(states, alone_states, strict=True):
            key = "d" + name
            assert_bit_identical({key: state[key]}, alone_state, f"state {key} after 10 steps")
