"""NaN and Inf in the gradients: skip (default), raise or ignore; never a corrupted state."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from registry import ALGORITHMS

import fastoptim
from fastoptim import kernels

CLASS_ALGORITHMS = [a for a in ALGORITHMS if a.make_optimizer]


def model():
    rng = np.random.default_rng(0)
    return {
        "W1": rng.standard_normal((30, 20)),
        "b1": rng.standard_normal((30, 1)),
        "W2": rng.standard_normal((1, 30)),
    }


def good_grads(t):
    rng = np.random.default_rng(10 + t)
    return {"d" + k: rng.standard_normal(v.shape) for k, v in model().items()}


def bad_grads(t, layer="b1", value=np.nan):
    grads = good_grads(t)
    grads["d" + layer][-1, 0] = value
    return grads


def as_form(opt, grads, form):
    """The same gradients as a dict, a FlatParams or a flat array."""
    if form == "dict":
        return grads
    flat = opt.params.zeros_like(prefix="d")
    for key, value in grads.items():
        flat[key] = value
    return flat if form == "FlatParams" else flat.buffer.copy()


def snapshot(opt):
    return [opt.params.buffer.copy(), *(s.buffer.copy() for s in opt.state.values()), opt.t]


def assert_unchanged(before, opt):
    after = snapshot(opt)
    assert after[-1] == before[-1]
    for saved, now in zip(before[:-1], after[:-1], strict=True):
        assert saved.tobytes() == now.tobytes()


FORMS = ["dict", "FlatParams", "flat array"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("algorithm", CLASS_ALGORITHMS, ids=lambda a: a.name)
def test_skip_is_the_default_and_a_skipped_step_leaves_no_trace(algorithm, form):
    hp = algorithm.hyperparameter_sets[0]
    opt = algorithm.make_optimizer(model(), hp)
    never_saw_it = algorithm.make_optimizer(model(), hp)
    opt.step(as_form(opt, good_grads(1), form))
    never_saw_it.step(good_grads(1))
    before = snapshot(opt)
    for value in (np.nan, np.inf, -np.inf):
        with pytest.warns(RuntimeWarning, match=r"step skipped: NaN or Inf in grads of \['b1'\]"):
            opt.step(as_form(opt, bad_grads(2, value=value), form))
        assert_unchanged(before, opt)
    assert opt.nonfinite.skipped_steps == 3 and opt.nonfinite.last_skipped_layers == ["b1"]
    for t in (2, 3):
        opt.step(as_form(opt, good_grads(t), form))
        never_saw_it.step(good_grads(t))
    assert opt.nonfinite.consecutive_skips == 0
    np.testing.assert_array_equal(opt.params.buffer, never_saw_it.params.buffer)
    for key in opt.state:
        np.testing.assert_array_equal(opt.state[key].buffer, never_saw_it.state[key].buffer)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("algorithm", CLASS_ALGORITHMS, ids=lambda a: a.name)
def test_raise_names_the_first_offending_layer_and_changes_nothing(algorithm, form):
    opt = algorithm.make_optimizer(model(), algorithm.hyperparameter_sets[0])
    opt.nonfinite.policy = "raise"
    opt.step(as_form(opt, good_grads(1), form))
    before = snapshot(opt)
    grads = bad_grads(2, layer="W2")
    grads["db1"][3, 0] = np.inf
    with pytest.raises(
        fastoptim.NonFiniteGradientError,
        match=r"grads\['b1'\] holds NaN or Inf \(layers: \['b1', 'W2'\]\); nothing was changed",
    ):
        opt.step(as_form(opt, grads, form))
    assert_unchanged(before, opt)


def test_too_many_skips_in_a_row_raise():
    opt = fastoptim.Adam(model(), max_consecutive_skips=2)
    with pytest.warns(RuntimeWarning):
        opt.step(bad_grads(1))
        opt.step(bad_grads(1))
        opt.step(good_grads(1))  # resets the run of skips
        opt.step(bad_grads(2))
        opt.step(bad_grads(2))
    before = snapshot(opt)
    with pytest.raises(fastoptim.NonFiniteGradientError, match="3 steps in a row"):
        opt.step(bad_grads(2))
    assert_unchanged(before, opt)
    assert opt.t == 1 and opt.nonfinite.skipped_steps == 4


def test_ignore_lets_nan_through_as_the_reference_does():
    opt = fastoptim.Momentum(model(), nonfinite="ignore")
    opt.step(bad_grads(1))
    assert opt.t == 1
    assert np.isnan(opt.params["b1"][-1, 0]) and np.isfinite(opt.params["b1"][:-1]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nonfinite": "warn"}, r"Invalid nonfinite policy: 'warn' \(use one of"),
        ({"max_consecutive_skips": -1}, "max_consecutive_skips must be a whole number >= 0"),
        ({"max_consecutive_skips": 2.5}, "max_consecutive_skips must be a whole number"),
        ({"max_grad_norm": 0.0}, r"Invalid max_grad_norm: 0.0 \(max_grad_norm must be a finite"),
        ({"max_grad_norm": float("inf")}, "Invalid max_grad_norm: inf"),
    ],
)
def test_policy_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fastoptim.Adam(model(), **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_check_gives_the_same_answer_for_any_thread_count(dtype):
    n = 1_000_003
    assert n >= fastoptim.config.SERIAL_BELOW
    grad = np.random.default_rng(1).standard_normal(n).astype(dtype)
    grad[::997] = np.finfo(dtype).max  # large but finite: no overflow in g - g
    answers = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        with fastoptim.num_threads(threads):
            row = [kernels.finite.all_finite([grad])]
            for position in (0, 1, n // 2, n - 2, n - 1):
                for value in (np.nan, np.inf, -np.inf):
                    bad = grad.copy()
                    bad[position] = value
                    row.append(kernels.finite.all_finite([bad]))
            small = grad[:7].copy()
            row.append(kernels.finite.all_finite([small]))
            small[6] = np.nan
            row.append(kernels.finite.all_finite([small]))
            answers.append(row)
    assert answers[0] == answers[1]
    assert answers[0] == [True] + [False] * 15 + [True, False]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_clipping_norm_gives_the_same_bits_for_any_thread_count(dtype):
    grad = (1e3 * np.random.default_rng(2).standard_normal(1_000_003)).astype(dtype)
    norms = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        with fastoptim.num_threads(threads):
            norms.append(kernels.norm.of_arrays([grad, grad[:5].copy()]))
    assert norms[0] == norms[1]
    exact = np.sqrt(np.sum(grad.astype(np.float64) ** 2) + np.sum(grad[:5].astype(np.float64) ** 2))
    assert abs(norms[0] - exact) <= 1e-12 * exact


def test_with_clipping_the_nonfinite_check_rides_on_the_norm(monkeypatch):
    opt = fastoptim.Adam(model(), max_grad_norm=1.0)
    opt.step(good_grads(1))
    assert opt.last_grad_norm > 1.0  # it clipped

    def second_read(arrays):
        raise AssertionError("the gradients were read again for the NaN/Inf check")

    monkeypatch.setattr(kernels.finite, "all_finite", second_read)
    opt.step(good_grads(2))  # no second read for finite gradients either
    assert opt.t == 2
    before = snapshot(opt)
    with pytest.warns(RuntimeWarning, match=r"NaN or Inf in grads of \['b1'\]"):
        opt.step(bad_grads(3))
    assert_unchanged(before, opt)
    assert np.isnan(opt.last_grad_norm)
