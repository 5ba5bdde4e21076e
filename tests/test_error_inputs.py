"""The registry's error inputs: every algorithm refuses each of them, at construction and in
``set_hyperparameters``, and changes nothing; every declared hyper-parameter has one."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from registry import ALGORITHMS, ERROR_INPUTS, random_grads, random_parameters

SHAPES = {"W1": (3, 4), "b1": (3, 1)}
WITH_ERRORS = [a for a in ALGORITHMS if a.optimizer_class is not None]
CASES = [
    pytest.param(algorithm, case, id=f"{algorithm.name}: {case.description}")
    for algorithm in WITH_ERRORS
    for case in algorithm.error_inputs
]


@pytest.mark.parametrize(("algorithm", "case"), CASES)
def test_construction_refuses_and_leaves_the_parameters_alone(algorithm, case):
    params = random_parameters(SHAPES, seed=0)
    before = copy.deepcopy(params)
    with pytest.raises(case.error, match=case.match):
        algorithm.optimizer_class(params, **case.hyperparameters)  # the rest: defaults
    for name, value in before.items():
        np.testing.assert_array_equal(params[name], value)


@pytest.mark.parametrize(("algorithm", "case"), CASES)
def test_set_hyperparameters_refuses_and_changes_nothing(algorithm, case):
    optimizer = algorithm.optimizer_class(random_parameters(SHAPES, seed=1), lr=0.01)
    optimizer.step(random_grads(SHAPES, np.random.default_rng(2)))
    before = optimizer.state_dict()
    params_before = optimizer.params.buffer.copy()
    with pytest.raises(case.error, match=case.match):
        optimizer.set_hyperparameters(**case.hyperparameters)
    after = optimizer.state_dict()
    assert after["hyperparameters"] == before["hyperparameters"]
    assert after["t"] == before["t"]
    np.testing.assert_array_equal(optimizer.params.buffer, params_before)
    for key, layers in before["state"].items():
        for name, array in layers.items():
            np.testing.assert_array_equal(after["state"][key][name], array)


@pytest.mark.parametrize("algorithm", WITH_ERRORS, ids=lambda a: a.name)
def test_every_declared_hyperparameter_has_an_error_input(algorithm):
    declared = [hp.name for hp in algorithm.optimizer_class.declaration.every_hyperparameter]
    missing = [name for name in declared if not ERROR_INPUTS.get(name)]
    assert not missing, f"add error inputs for {missing} to registry.ERROR_INPUTS"
    covered = {name for case in algorithm.error_inputs for name in case.hyperparameters}
    assert set(declared) <= covered
