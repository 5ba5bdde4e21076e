"""``step(grads, grad_scale=...)``: the gradients times a factor inside the kernel.

GradScaler's loss scales are powers of two, so unscaling by them is exact: stepping with
``4 * g`` and ``grad_scale=0.25`` must give the bits of stepping with ``g``, for every
algorithm, by the whole buffer and layer by layer, with and without clipping (whose norm
is of the scaled gradients). A bad factor is refused before anything changes. And the
public per-layer stage, ``update_layer``, is one layer of a step.
"""

from __future__ import annotations

import numpy as np
import pytest
from registry import ALGORITHMS, random_grads, random_parameters

SHAPES = {"W1": (7, 5), "b1": (7, 1), "W2": (1, 7)}
WITH_CLASS = [a for a in ALGORITHMS if a.make_optimizer is not None]


def optimizers(algorithm, hp):
    parameters = random_parameters(SHAPES, seed=1)
    return [algorithm.make_optimizer(dict(parameters), hp) for _ in range(2)]


@pytest.mark.parametrize("grads_as", ["flat", "dict"])
@pytest.mark.parametrize("algorithm", WITH_CLASS, ids=lambda a: a.name)
def test_unscaling_inside_the_step_gives_the_bits_of_unscaled_gradients(algorithm, grads_as):
    rng = np.random.default_rng(2)
    for hp in algorithm.hyperparameter_sets:
        plain, scaled = optimizers(algorithm, hp)
        for _ in range(4):
            grads = random_grads(SHAPES, rng)
            times_four = {key: 4.0 * value for key, value in grads.items()}
            if grads_as == "flat":
                grads, times_four = _flat(plain, grads), _flat(plain, times_four)
            plain.step(grads)
            scaled.step(times_four, grad_scale=0.25)
        for name in plain.layout.names:
            np.testing.assert_array_equal(scaled.params[name], plain.params[name], err_msg=name)
            for key in plain.state:
                np.testing.assert_array_equal(scaled.state[key][name], plain.state[key][name])
        if plain.max_grad_norm is not None:
            assert scaled.last_grad_norm == plain.last_grad_norm


def _flat(optimizer, grads):
    flat = optimizer.params.zeros_like(prefix="d")
    for key, value in grads.items():
        flat[key] = value
    return flat


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), "2", None])
def test_a_bad_grad_scale_is_refused_before_anything_changes(bad):
    (algorithm,) = [a for a in WITH_CLASS if a.name == "adam"]
    optimizer, _ = optimizers(algorithm, algorithm.hyperparameter_sets[0])
    before = optimizer.params.buffer.copy()
    with pytest.raises(ValueError, match="Invalid grad_scale"):
        optimizer.step(random_grads(SHAPES, np.random.default_rng(3)), grad_scale=bad)
    np.testing.assert_array_equal(optimizer.params.buffer, before)
    assert optimizer.t == 0


@pytest.mark.parametrize("algorithm", WITH_CLASS, ids=lambda a: a.name)
def test_update_layer_is_one_layer_of_a_step(algorithm):
    """The public per-layer stage: updating each layer alone at step t gives the bits of
    one step at t over all of them (no clipping: update_layer leaves it to its caller)."""
    rng = np.random.default_rng(4)
    for hp in algorithm.hyperparameter_sets:
        whole, by_layer = optimizers(algorithm, hp)
        if whole.max_grad_norm is not None:
            continue
        if whole.running_state():  # values carried from step to step: the caller's too
            with pytest.raises(TypeError, match="update_layer needs carried"):
                by_layer.update_layer(whole.layout.names[0], np.zeros(1), 1)
            continue
        for t in range(1, 4):
            grads = random_grads(SHAPES, rng)
            whole.step(grads)
            for name in by_layer.layout.names:
                by_layer.update_layer(name, grads["d" + name].reshape(-1), t, grad_scale=1.0)
        for name in whole.layout.names:
            np.testing.assert_array_equal(by_layer.params[name], whole.params[name], err_msg=name)
            for key in whole.state:
                np.testing.assert_array_equal(by_layer.state[key][name], whole.state[key][name])
        assert by_layer.t == 0  # the caller keeps the step count
