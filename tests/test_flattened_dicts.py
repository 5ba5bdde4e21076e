"""Small models on plain dicts: the course drop-ins flatten them on the first call and
make one kernel call per step after; the numbers are the reference's, and whatever the
caller does to the dicts between calls is noticed."""

from __future__ import annotations

import numpy as np
import pytest
from registry import COURSE_ALGORITHMS, random_grads, random_parameters

import fastoptim
from fastoptim import reference
from fastoptim.compat import flattened_dicts

SHAPES = {"W1": (5, 2), "b1": (5, 1), "W2": (1, 5), "b2": (1, 1)}


def run_both(algorithm, hp, steps, between=None):
    """``steps`` steps through fastoptim and the reference; ``between(t, dicts)`` may change
    fastoptim's dicts before step t (and must change the reference's the same way)."""
    parameters = random_parameters(SHAPES, seed=2)
    ours = {k: v.copy() for k, v in parameters.items()}
    theirs = {k: v.copy() for k, v in parameters.items()}
    our_states = algorithm.course_init(fastoptim, ours)
    their_states = algorithm.course_init(reference, theirs)
    rng = np.random.default_rng(3)
    for t in range(1, steps + 1):
        grads = random_grads(SHAPES, rng)
        if between is not None:
            between(t, ours, our_states, theirs, their_states)
        algorithm.course_update(fastoptim, ours, grads, our_states, t, hp)
        algorithm.course_update(reference, theirs, grads, their_states, t, hp)
    return ours, theirs


@pytest.mark.parametrize("algorithm", COURSE_ALGORITHMS, ids=lambda a: a.name)
def test_an_entry_replaced_between_calls_is_taken_as_it_is(algorithm):
    """parameters['W1'] = new array (loading weights, say): the next call takes it."""

    def replace(t, ours, our_states, theirs, their_states):
        if t == 4:
            ours["W1"] = np.full((5, 2), 0.25)
            theirs["W1"] = np.full((5, 2), 0.25)
        if t == 6 and our_states:
            our_states[0]["db1"] = np.full((5, 1), 0.5)
            their_states[0]["db1"] = np.full((5, 1), 0.5)

    for hp in algorithm.hyperparameter_sets:
        ours, theirs = run_both(algorithm, hp, 9, replace)
        for name in SHAPES:
            np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-12, atol=1e-15)


def test_a_view_made_read_only_is_refused_before_anything_changes():
    parameters = random_parameters(SHAPES, seed=2)
    grads = random_grads(SHAPES, np.random.default_rng(0))
    v = fastoptim.initialize_velocity(parameters)
    fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.1)  # flattened
    parameters["b1"].flags.writeable = False
    before = {k: a.copy() for k, a in parameters.items()}
    with pytest.raises(ValueError, match=r"parameters\['b1'\] is read-only"):
        fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.1)
    for key, array in parameters.items():
        np.testing.assert_array_equal(array, before[key])


def test_gradients_of_another_model_are_still_refused_after_flattening():
    parameters = random_parameters(SHAPES, seed=2)
    grads = random_grads(SHAPES, np.random.default_rng(0))
    fastoptim.update_parameters_with_gd(parameters, grads, 0.1)
    with pytest.raises(KeyError, match=r"grads has 'dW3' but there is no parameters\['W3'\]"):
        fastoptim.update_parameters_with_gd(parameters, {**grads, "dW3": np.ones(3)}, 0.1)
    with pytest.raises(ValueError, match=r"grads\['dW1'\] has shape \(2, 5\)"):
        fastoptim.update_parameters_with_gd(parameters, {**grads, "dW1": np.ones((2, 5))}, 0.1)
    with pytest.raises(
        TypeError, match=r"grads\['dW1'\] is float32 but parameters\['W1'\] is float64"
    ):
        fastoptim.update_parameters_with_gd(
            parameters, {**grads, "dW1": np.ones((5, 2), np.float32)}, 0.1
        )


def test_only_a_few_models_are_remembered():
    # The models stay alive: a dead model's dict may hand its id to the next one, whose
    # record then replaces the dead one's (records are kept by the dict's id).
    models = []
    for seed in range(3 * flattened_dicts.MODELS_KEPT):
        models.append(random_parameters(SHAPES, seed=seed))
        fastoptim.update_parameters_with_gd(
            models[-1], random_grads(SHAPES, np.random.default_rng(0)), 0.1
        )
    assert flattened_dicts.remembered() == flattened_dicts.MODELS_KEPT
    # The newest are the ones remembered: they still take the flat path.
    assert flattened_dicts.flattened(models[-1], ()) is not None
    assert flattened_dicts.flattened(models[0], ()) is None


def test_view_gradients_take_the_long_way_without_flattening_again():
    """A backward pass that returns views (a transpose) goes through the per-layer checks
    every step; the flattened buffers stay, and the numbers are the reference's."""
    parameters = random_parameters(SHAPES, seed=2)
    theirs = {k: v.copy() for k, v in parameters.items()}
    rng = np.random.default_rng(1)
    first = random_grads(SHAPES, rng)
    fastoptim.update_parameters_with_gd(parameters, first, 0.1)  # flattened
    theirs = reference.update_parameters_with_gd(theirs, first, 0.1)
    entries = dict(parameters)
    for _ in range(2):
        grads = {k: np.ascontiguousarray(g.T).T for k, g in random_grads(SHAPES, rng).items()}
        assert all(g.base is not None for g in grads.values())
        fastoptim.update_parameters_with_gd(parameters, grads, 0.1)
        theirs = reference.update_parameters_with_gd(theirs, grads, 0.1)
    assert all(parameters[k] is entries[k] for k in entries)  # not flattened again
    for name in SHAPES:
        np.testing.assert_array_equal(parameters[name], theirs[name])
