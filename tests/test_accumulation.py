"""Gradient accumulation (``accumulation_steps=k``): k calls of ``step`` make one update with
the mean of their gradients (optax.MultiSteps), the first k - 1 changing no parameter; the
last adds, takes the mean and updates in one pass: the bits of one step with the summed
gradients at ``grad_scale=1/k``, for every elementwise algorithm, clipping, every state
storage and gradient form, across checkpoints taken between micro-batches."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from registry import ALGORITHMS, random_grads, random_parameters

import fastoptim

SHAPES = {"W1": (30, 20), "b1": (30, 1), "W2": (5, 30), "b2": (5, 1)}
ELEMENTWISE = [
    a for a in ALGORITHMS if a.optimizer_class is not None and a.make_optimizer is not None
]
K = 3


def _pair(algorithm, hp, dtype, **options):
    """The registry's optimizer with ``hp`` as it is, and the same with ``options``."""
    params = {k: v.astype(dtype) for k, v in random_parameters(SHAPES, seed=1).items()}
    plain = algorithm.make_optimizer(copy.deepcopy(params), hp)
    other = type(plain)(copy.deepcopy(params), **{**plain.hyperparameters(), **options})
    return plain, other


def _micro_batches(dtype, n, seed=2):
    rng = np.random.default_rng(seed)
    return [{k: v.astype(dtype) for k, v in random_grads(SHAPES, rng).items()} for _ in range(n)]


def _summed(grads):
    # in the order the buffer adds them: a copy of the first, then each added to the sum,
    # the last added inside the kernel (addition commutes, bit for bit)
    total = {k: v.copy() for k, v in grads[0].items()}
    for g in grads[1:]:
        total = {k: total[k] + g[k] for k in total}
    return total


@pytest.mark.parametrize("form", ["dict", "flat"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ELEMENTWISE, ids=lambda a: a.name)
def test_k_calls_are_one_step_with_the_mean(algorithm, dtype, form):
    for hp in algorithm.hyperparameter_sets:  # the clipped sets take the two-pass path
        plain, accumulating = _pair(algorithm, hp, dtype, accumulation_steps=K)
        for update in range(3):
            grads = _micro_batches(dtype, K, seed=update)
            before = accumulating.params.buffer.copy()
            for micro, g in enumerate(grads):
                accumulating.step(accumulating.flat_gradients(g) if form == "flat" else g)
                if micro < K - 1:  # nothing moves before the last
                    np.testing.assert_array_equal(accumulating.params.buffer, before)
                    assert accumulating.micro_steps == micro + 1
            plain.step(_summed(grads), grad_scale=1.0 / K)
            assert accumulating.t == plain.t == update + 1
            assert accumulating.micro_steps == 0
            np.testing.assert_array_equal(accumulating.params.buffer, plain.params.buffer)
            for key in plain.state:
                np.testing.assert_array_equal(
                    accumulating.state[key].buffer, plain.state[key].buffer
                )


def test_the_update_uses_the_mean_of_the_gradients():
    # against the mean in float64, whatever the order of the additions
    grads = _micro_batches(np.float64, 4)
    mean = {k: sum(g[k] for g in grads) / 4 for k in grads[0]}
    params = random_parameters(SHAPES, seed=3)
    expected = fastoptim.SGD(copy.deepcopy(params), lr=0.1)
    expected.step(mean)
    opt = fastoptim.SGD(copy.deepcopy(params), lr=0.1, accumulation_steps=4)
    for g in grads:
        opt.step(g)
    np.testing.assert_allclose(opt.params.buffer, expected.params.buffer, rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_low_precision_state_and_the_ema_accumulate_too(state_dtype):
    rng = np.random.default_rng(4)
    shapes = {"W": (80, 100), "b": (100,)}
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    options = {"lr": 0.01, "state_dtype": state_dtype, "ema_decay": 0.9}
    plain = fastoptim.Adam(copy.deepcopy(params), **options)
    accumulating = fastoptim.Adam(copy.deepcopy(params), **options, accumulation_steps=2)
    for _ in range(3):
        grads = [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
                 for _ in range(2)]  # fmt: skip
        for g in grads:
            accumulating.step(g)
        plain.step({k: grads[0][k] + grads[1][k] for k in shapes}, grad_scale=0.5)
    np.testing.assert_array_equal(accumulating.params.buffer, plain.params.buffer)
    np.testing.assert_array_equal(accumulating.ema.buffer, plain.ema.buffer)


def test_a_checkpoint_between_micro_batches_resumes_exactly(tmp_path):
    grads = _micro_batches(np.float32, 8)
    options = {"lr": 0.01, "weight_decay": 0.1, "accumulation_steps": K}
    params = {k: v.astype(np.float32) for k, v in random_parameters(SHAPES, seed=5).items()}
    opt = fastoptim.AdamW(copy.deepcopy(params), **options)
    for g in grads[:4]:  # one update, then one micro-batch waiting
        opt.step(g)
    assert (opt.t, opt.micro_steps) == (1, 1)
    fastoptim.save(tmp_path / "acc.npz", opt)
    resumed = fastoptim.AdamW(copy.deepcopy(params), **options)
    fastoptim.load(tmp_path / "acc.npz", resumed)
    again = fastoptim.AdamW(copy.deepcopy(params), **options)
    again.load_state_dict(copy.deepcopy(opt.state_dict()))
    again.params.buffer[:] = opt.params.buffer
    assert resumed.micro_steps == again.micro_steps == 1
    for g in grads[4:]:
        for o in (opt, resumed, again):
            o.step(g)
    for o in (resumed, again):
        assert (o.t, o.micro_steps) == (opt.t, opt.micro_steps) == (2, 2)
        np.testing.assert_array_equal(o.params.buffer, opt.params.buffer)
        np.testing.assert_array_equal(o.accumulated.buffer, opt.accumulated.buffer)


def test_a_micro_batch_with_nan_is_skipped_and_not_counted():
    grads = _micro_batches(np.float64, 3)
    params = random_parameters(SHAPES, seed=6)
    plain = fastoptim.Adam(copy.deepcopy(params), lr=0.01)
    opt = fastoptim.Adam(copy.deepcopy(params), lr=0.01, accumulation_steps=2)
    bad = copy.deepcopy(grads[1])
    bad["dW1"][0, 0] = np.nan
    opt.step(grads[0])
    with pytest.warns(RuntimeWarning, match="NaN or Inf"):
        opt.step(bad)  # the last of the two: skipped, the sum still waits for it
    assert (opt.t, opt.micro_steps) == (0, 1)
    opt.step(grads[2])
    plain.step(_summed([grads[0], grads[2]]), grad_scale=0.5)
    np.testing.assert_array_equal(opt.params.buffer, plain.params.buffer)


def test_grad_scale_goes_with_the_last_micro_batch():
    grads = _micro_batches(np.float64, 2)
    params = random_parameters(SHAPES, seed=7)
    opt = fastoptim.SGD(copy.deepcopy(params), lr=0.1, accumulation_steps=2)
    with pytest.raises(ValueError, match="pass it with the last of every 2 steps"):
        opt.step(grads[0], grad_scale=0.5)
    assert opt.micro_steps == 0
    opt.step(grads[0])
    opt.step(grads[1], grad_scale=0.25)  # unscales the sum's mean
    plain = fastoptim.SGD(copy.deepcopy(params), lr=0.1)
    plain.step(_summed(grads), grad_scale=0.125)
    np.testing.assert_array_equal(opt.params.buffer, plain.params.buffer)


def test_accumulation_steps_cannot_change():
    opt = fastoptim.SGD(random_parameters(SHAPES, seed=8), lr=0.1, accumulation_steps=2)
    with pytest.raises(ValueError, match="accumulation_steps decides whether"):
        opt.set_hyperparameters(accumulation_steps=4)


@pytest.mark.parametrize("name", ["Adafactor", "LAMB"])
def test_the_algorithms_of_several_passes_step_from_the_sum(name):
    # their passes read the gradients more than once: the last call adds into the buffer
    # first, then the step reads it
    cls = getattr(fastoptim, name)
    rng = np.random.default_rng(9)
    shapes = {"W": (40, 30), "b": (30,)}
    start = {k: rng.standard_normal(s) for k, s in shapes.items()}
    plain = cls(copy.deepcopy(start), lr=0.01)
    accumulating = cls(copy.deepcopy(start), lr=0.01, accumulation_steps=K)
    for _ in range(2):
        grads = [{k: rng.standard_normal(s) for k, s in shapes.items()} for _ in range(K)]
        for g in grads:
            accumulating.step(g)
        plain.step(_summed(grads), grad_scale=1.0 / K)
    assert accumulating.t == plain.t == 2
    np.testing.assert_array_equal(accumulating.params.buffer, plain.params.buffer)
