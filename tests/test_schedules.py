"""Learning-rate schedules: their values, their use by every optimizer, their round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from registry import ALGORITHMS

import fastoptim
from fastoptim import schedules

CLASS_ALGORITHMS = [a for a in ALGORITHMS if a.make_optimizer]


def test_values():
    assert [schedules.Constant(0.1)(t) for t in (1, 100)] == [0.1, 0.1]
    step = schedules.StepDecay(1.0, step_size=3, gamma=0.5)
    assert [step(t) for t in range(1, 8)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert schedules.Exponential(2.0, 0.5)(3) == 0.5
    cosine = schedules.WarmupCosine(1.0, total_steps=110, warmup_steps=10, min_lr=0.1)
    assert [cosine(t) for t in (1, 5, 10)] == [0.1, 0.5, 1.0]
    assert cosine(60) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 2)))
    assert cosine(110) == pytest.approx(0.1) and cosine(500) == pytest.approx(0.1)


def model():
    rng = np.random.default_rng(0)
    return {"W1": rng.standard_normal((20, 10)), "b1": rng.standard_normal((20, 1))}


def grads_at(t):
    rng = np.random.default_rng(t)
    return {"d" + k: rng.standard_normal(v.shape) for k, v in model().items()}


@pytest.mark.parametrize("algorithm", CLASS_ALGORITHMS, ids=lambda a: a.name)
def test_a_schedule_gives_the_same_bits_as_setting_lr_by_hand(algorithm, tmp_path):
    schedule = schedules.WarmupCosine(0.05, total_steps=12, warmup_steps=3)
    hp = {**algorithm.hyperparameter_sets[0], "lr": schedule}
    scheduled = algorithm.make_optimizer(model(), hp)
    by_hand = algorithm.make_optimizer(model(), algorithm.hyperparameter_sets[0])
    for t in range(1, 7):
        by_hand.lr = schedule(t)
        by_hand.step(grads_at(t))
        scheduled.step(grads_at(t))
        assert scheduled.params.buffer.tobytes() == by_hand.params.buffer.tobytes()
    assert scheduled.lr == schedule(7)  # the rate of the next step
    # saved as the schedule itself, restored from the state_dict and from a checkpoint
    assert scheduled.state_dict()["hyperparameters"]["lr"] == schedule.describe()
    fastoptim.save(tmp_path / "ckpt.npz", scheduled)
    resumed = algorithm.make_optimizer(model(), algorithm.hyperparameter_sets[0])
    fastoptim.load(tmp_path / "ckpt.npz", resumed)
    assert resumed.schedule == schedule and resumed.lr == schedule(7)
    for t in range(7, 13):
        scheduled.step(grads_at(t))
        resumed.step(grads_at(t))
    assert resumed.params.buffer.tobytes() == scheduled.params.buffer.tobytes()


def test_a_schedule_that_goes_bad_raises_at_that_step_and_changes_nothing():
    opt = fastoptim.Adam(model(), lr=lambda t: 0.01 if t < 3 else float("nan"))
    opt.step(grads_at(1))
    opt.step(grads_at(2))
    before = opt.params.buffer.copy(), opt.state["exp_avg"].buffer.copy(), opt.t
    with pytest.raises(ValueError, match=r"Invalid learning rate: nan \(lr\(3\) must be"):
        opt.step(grads_at(3))
    assert opt.params.buffer.tobytes() == before[0].tobytes()
    assert opt.state["exp_avg"].buffer.tobytes() == before[1].tobytes() and opt.t == 2


def test_unknown_schedules_in_a_state_dict_are_refused():
    opt = fastoptim.SGD(model(), lr=schedules.Exponential(0.1, 0.9))
    saved = opt.state_dict()
    saved["hyperparameters"]["lr"] = {"schedule": "Linear", "lr": 0.1}
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'Linear'"):
        opt.load_state_dict(saved)
    assert opt.schedule == schedules.Exponential(0.1, 0.9)
