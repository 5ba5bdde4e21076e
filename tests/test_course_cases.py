"""The classic course test cases reproduce the course's published values (shared/COURSE_CASES.md)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastoptim
from fastoptim import reference


def course_inputs():
    np.random.seed(1)
    W1 = np.random.randn(2, 3)
    b1 = np.random.randn(2, 1)
    W2 = np.random.randn(3, 3)
    b2 = np.random.randn(3, 1)
    dW1 = np.random.randn(2, 3)
    db1 = np.random.randn(2, 1)
    dW2 = np.random.randn(3, 3)
    db2 = np.random.randn(3, 1)
    parameters = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
    grads = {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}
    return parameters, grads


def as_given(parameters, grads):
    return copy.deepcopy(parameters), copy.deepcopy(grads)


def as_flat(parameters, grads):
    flat_params = fastoptim.flatten(parameters)
    flat_grads = flat_params.zeros_like(prefix="d")
    for key, value in grads.items():
        flat_grads[key] = value
    return flat_params, flat_grads


CONTAINERS = {"plain dicts": as_given, "FlatParams": as_flat}
IMPLEMENTATIONS = {"fastoptim": fastoptim, "reference": reference}
CASES = [("fastoptim", "plain dicts"), ("fastoptim", "FlatParams"), ("reference", "plain dicts")]


@pytest.mark.parametrize(("module", "container"), CASES)
def test_momentum_published_values(module, container):
    impl = IMPLEMENTATIONS[module]
    parameters, grads = CONTAINERS[container](*course_inputs())
    v = impl.initialize_velocity(parameters)
    returned = impl.update_parameters_with_momentum(
        parameters, grads, v, beta=0.9, learning_rate=0.01
    )
    assert returned[0] is parameters and returned[1] is v
    np.testing.assert_allclose(
        parameters["W1"],
        [[1.62544598, -0.61290114, -0.52907334], [-1.07347112, 0.86450677, -2.30085497]],
        rtol=0,
        atol=5e-9,  # the published values carry 8 decimals
    )
    np.testing.assert_allclose(
        parameters["b2"], [[-0.87809283], [0.04055394], [0.58207317]], rtol=0, atol=5e-9
    )


@pytest.mark.parametrize(("module", "container"), CASES)
def test_adam_published_values(module, container):
    impl = IMPLEMENTATIONS[module]
    parameters, grads = CONTAINERS[container](*course_inputs())
    v, s = impl.initialize_adam(parameters)
    returned = impl.update_parameters_with_adam(parameters, grads, v, s, t=2)
    assert returned[0] is parameters and returned[1] is v and returned[2] is s
    expected = {
        "W1": [[1.63178673, -0.61919778, -0.53561312], [-1.08040999, 0.85796626, -2.29409733]],
        "b1": [[1.75225313], [-0.75376553]],
        "W2": [
            [0.32648046, -0.25681174, 1.46954931],
            [-2.05269934, -0.31497584, -0.37661299],
            [1.14121081, -1.09244991, -0.16498684],
        ],
        "b2": [[-0.88529979], [0.03477238], [0.57537385]],
    }
    for key, value in expected.items():
        # np.allclose as the course compares: the published text and the notebook's own run
        # differ in the last digit of W2[2][1] and b2[0]
        assert np.allclose(parameters[key], value), key
    assert np.allclose(
        v["dW1"], [[-0.11006192, 0.11447237, 0.09015907], [0.05024943, 0.09008559, -0.06837279]]
    )
    assert np.allclose(
        s["dW1"], [[0.00121136, 0.00131039, 0.00081287], [0.0002525, 0.00081154, 0.00046748]]
    )


def test_adam_does_not_divide_by_the_uncorrected_second_moment():
    """The widely copied bug divides by sqrt(s) instead of sqrt(s_corrected)."""
    parameters, grads = course_inputs()
    v, s = fastoptim.initialize_adam(parameters)
    fastoptim.update_parameters_with_adam(parameters, grads, v, s, t=2)
    assert not np.isclose(parameters["W1"][0, 0], 1.79078098)
    assert np.isclose(parameters["W1"][0, 0], 1.63178673)


def test_drop_ins_flatten_small_dicts_once_and_ignore_other_course_keys():
    """Course backward passes return dA and dZ too; the reference ignores them, so do we.
    A small model's dicts are flattened on the first call (their entries rebound to views
    of one buffer, as the reference rebinds every entry), then updated in place."""
    parameters, grads = course_inputs()
    grads["dA1"] = np.ones((2, 5))
    grads["dZ2"] = np.ones((3, 5))
    dicts = parameters, *fastoptim.initialize_adam(parameters)
    fastoptim.update_parameters_with_adam(parameters, grads, *dicts[1:], t=1)
    buffers = {id(array.base) for d in dicts for array in d.values()}
    assert len(buffers) == 3, "one buffer for the parameters, one for v, one for s"
    entries = [dict(d) for d in dicts]
    fastoptim.update_parameters_with_adam(parameters, grads, *dicts[1:], t=2)
    for before, after in zip(entries, dicts, strict=True):
        assert all(before[key] is after[key] for key in after), "updated in place"
    assert set(dicts[1]) == {"dW1", "db1", "dW2", "db2"}


def test_large_dicts_are_updated_in_place_layer_by_layer():
    rng = np.random.default_rng(0)
    parameters = {"W1": rng.standard_normal((300, 300)), "b1": np.zeros((300, 1))}
    grads = {"dW1": np.ones((300, 300)), "db1": np.ones((300, 1))}
    W1, v = parameters["W1"], fastoptim.initialize_velocity(parameters)
    vW1 = v["dW1"]
    fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.1)
    assert parameters["W1"] is W1 and v["dW1"] is vW1
    np.testing.assert_allclose(vW1, 0.1)
