"""The public stages of a step (Optimizer.plan, apply, learning_rates, scalar_table,
gradient_norm, offending_layers, flat_gradients, layer_gradients, update_layer,
release_state): run by hand they give exactly what ``step`` gives."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastoptim

SHAPES = {"W1": (4, 3), "b1": (4, 1), "W2": (1, 4)}


def _model(seed=0):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = {"d" + k: rng.standard_normal(s) for k, s in SHAPES.items()}
    return params, grads


@pytest.mark.parametrize("grads_as", ["dict", "flat"])
def test_plan_then_apply_is_step(grads_as):
    params, grads = _model()
    by_step = fastoptim.AdamW(copy.deepcopy(params), lr=0.01, max_grad_norm=0.5)
    by_stages = fastoptim.AdamW(copy.deepcopy(params), lr=0.01, max_grad_norm=0.5)
    for t in range(1, 4):
        given = grads if grads_as == "dict" else by_stages.params.zeros_like(prefix="d")
        if grads_as == "flat":
            for key, value in grads.items():
                given[key] = value
        by_step.step(given)
        pieces = by_stages.plan(given)
        norm = by_stages.gradient_norm(pieces)
        scale = min(1.0, 0.5 / (norm + 1e-6))
        by_stages.apply(pieces, t, by_stages.learning_rates(t), scale)
        assert by_stages.t == 0  # apply leaves the count to its caller
        np.testing.assert_array_equal(by_stages.params.buffer, by_step.params.buffer)
        for key in by_step.state:
            np.testing.assert_array_equal(by_stages.state[key].buffer, by_step.state[key].buffer)


def test_pieces_are_named_records_over_the_buffers():
    params, grads = _model()
    opt = fastoptim.Adam(params, groups=[fastoptim.Group(["W2"], lr=0.5)])
    pieces = opt.plan(grads)
    assert [piece.names for piece in pieces] == [("W1",), ("b1",), ("W2",)]
    assert [piece.group for piece in pieces] == [0, 0, 1]
    for piece in pieces:
        assert piece.arrays == (piece.param, piece.grad, *piece.states)
        assert np.shares_memory(piece.param, opt.params.buffer)
    table = opt.scalar_table(1, opt.learning_rates(1))
    assert table[1].step_size == pytest.approx(0.5 / (1 - 0.9))  # the group's rate, t = 1


def test_update_layer_steps_one_layer_at_its_own_count():
    params, grads = _model()
    opt = fastoptim.Adam(copy.deepcopy(params), lr=0.01)
    alone = fastoptim.Adam({"b1": params["b1"].copy()}, lr=0.01)
    for t in range(1, 4):
        alone.step({"b1": grads["db1"]})
        opt.update_layer("b1", grads["db1"].reshape(-1), t)
    np.testing.assert_array_equal(opt.params["b1"], alone.params["b1"])
    np.testing.assert_array_equal(opt.params["W1"], params["W1"])  # the others untouched
    assert opt.t == 0


def test_flat_gradients_and_layer_gradients_check_and_lay_out_a_dict():
    params, grads = _model()
    opt = fastoptim.SGD(params, lr=0.1)
    flat = opt.flat_gradients(grads)
    expected = fastoptim.flatten({k[1:]: v for k, v in grads.items()}).buffer
    np.testing.assert_array_equal(flat, expected)
    assert [name for name, _ in opt.layer_gradients(grads)] == ["W1", "b1", "W2"]
    with pytest.raises(KeyError, match="missing the gradient of"):
        opt.flat_gradients({"dW1": grads["dW1"]})
    with pytest.raises(TypeError, match="grads must be a FlatParams, a dict of arrays"):
        opt.plan([1, 2, 3])


def test_offending_layers_names_the_layers_with_nan():
    params, grads = _model()
    grads["db1"][0, 0] = np.nan
    opt = fastoptim.Adam(params)
    assert opt.offending_layers(opt.plan(grads)) == ["b1"]
    flat = opt.params.zeros_like(prefix="d")
    flat["dW2"][0, 1] = np.inf
    assert opt.offending_layers(opt.plan(flat)) == ["W2"]


def test_release_state_frees_the_buffers():
    params, grads = _model()
    opt = fastoptim.Adam(params)
    opt.step(grads)
    opt.release_state()
    assert opt.state == {}
    assert [name for name, _ in opt.layer_gradients(grads)] == ["W1", "b1", "W2"]


def test_set_hyperparameters_changes_what_it_names_and_checks_the_rest():
    params, _ = _model()
    opt = fastoptim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    opt.set_hyperparameters(lr=0.2, momentum=0.5)
    assert opt.hyperparameters()["lr"] == 0.2 and opt.momentum == 0.5 and opt.nesterov
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        opt.set_hyperparameters(momentum=0.0)
    assert opt.momentum == 0.5
    with pytest.raises(TypeError, match="SGD has no hyper-parameters \\['betas'\\]"):
        opt.set_hyperparameters(betas=(0.9, 0.99))
    adam = fastoptim.Adam(_model()[0])
    with pytest.raises(ValueError, match="amsgrad decides which state buffers exist"):
        adam.amsgrad = True
