"""state_dict round-trips everything; a restored optimizer continues bit-identically."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from registry import ALGORITHMS

import fastoptim

WITH_CLASS = [a for a in ALGORITHMS if a.make_optimizer]


def model(dtype):
    rng = np.random.default_rng(0)
    return {
        "W1": rng.standard_normal((40, 30)).astype(dtype),
        "b1": np.zeros((40, 1), dtype),
        "W2": rng.standard_normal((1, 40)).astype(dtype),
        "scale": np.array(1.0, dtype),
    }


def grads_at(t, params):
    rng = np.random.default_rng(100 + t)
    return {"d" + k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", WITH_CLASS, ids=lambda a: a.name)
def test_restored_optimizer_continues_bit_identically(algorithm, dtype):
    hp = algorithm.hyperparameter_sets[1]
    uninterrupted = algorithm.make_optimizer(model(dtype), hp)
    first_half = algorithm.make_optimizer(model(dtype), hp)
    for t in range(1, 6):
        uninterrupted.step(grads_at(t, model(dtype)))
        first_half.step(grads_at(t, model(dtype)))
    # a checkpoint file: the parameters and the optimizer, as copies
    checkpoint = pickle.loads(
        pickle.dumps({"params": first_half.params, "optimizer": first_half.state_dict()})
    )
    first_half.step(grads_at(99, model(dtype)))  # must not leak into the checkpoint

    resumed = algorithm.make_optimizer(checkpoint["params"], algorithm.hyperparameter_sets[0])
    resumed.load_state_dict(checkpoint["optimizer"])
    assert resumed.t == 5
    assert resumed.hyperparameters() == uninterrupted.hyperparameters()
    for t in range(6, 11):
        uninterrupted.step(grads_at(t, model(dtype)))
        resumed.step(grads_at(t, model(dtype)))
        np.testing.assert_array_equal(resumed.params.buffer, uninterrupted.params.buffer)
    for key in uninterrupted.state:
        np.testing.assert_array_equal(resumed.state[key].buffer, uninterrupted.state[key].buffer)
    assert resumed.t == uninterrupted.t == 10


def test_state_dict_contents():
    opt = fastoptim.Adam(model(np.float32), lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    opt.step(grads_at(1, model(np.float32)))
    sd = opt.state_dict()
    assert sd["algorithm"] == "Adam"
    assert sd["hyperparameters"] == {
        "lr": 0.01,
        "betas": (0.8, 0.99),
        "eps": 1e-6,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
        "state_dtype": "float32",
        "block_size": None,
        "max_grad_norm": None,
        "ema_decay": None,
        "accumulation_steps": 1,
    }
    assert sd["t"] == 1
    assert sd["layout"] == {
        "names": ["W1", "b1", "W2", "scale"],
        "shapes": [[40, 30], [40, 1], [1, 40], []],
        "dtype": "float32",
    }
    assert set(sd["state"]) == {"exp_avg", "exp_avg_sq"}
    assert sd["state"]["exp_avg"]["W1"].shape == (40, 30)
    assert not np.shares_memory(sd["state"]["exp_avg"]["W1"], opt.state["exp_avg"].buffer)


def broken_state_dicts(sd):
    def edit(change):
        copy_ = copy.deepcopy(sd)
        change(copy_)
        return copy_

    return [
        (edit(lambda d: d.update(algorithm="Momentum")), ValueError, "saved by 'Momentum'"),
        (
            edit(lambda d: d["layout"]["shapes"].__setitem__(0, [30, 40])),
            ValueError,
            r"saved for other parameters: its layer 'W1' has shape \(30, 40\), this "
            r"optimizer's \(40, 30\)",
        ),
        (
            edit(lambda d: d["layout"].update(dtype="float64")),
            ValueError,
            "saved for other parameters: it is float64, this optimizer float32",
        ),
        (
            edit(lambda d: d["layout"].update(names=["W1", "b9", *d["layout"]["names"][2:]])),
            ValueError,
            "saved for other parameters: it has no layer 'b1'",
        ),
        (
            edit(lambda d: d["state"].pop("exp_avg_sq")),
            KeyError,
            r"must hold exactly \['exp_avg', 'exp_avg_sq'\]; it lacks \['exp_avg_sq'\]",
        ),
        (
            edit(lambda d: d["state"]["exp_avg"].pop("b1")),
            KeyError,
            r"one array per layer; it lacks \['b1'\]",
        ),
        (
            edit(lambda d: d["state"]["exp_avg"].update(b1=np.zeros((40,), np.float32))),
            ValueError,
            r"shape \(40,\)",
        ),
        (edit(lambda d: d["state"]["exp_avg"].update(b1=np.zeros((40, 1)))), ValueError, "float64"),
        (
            edit(lambda d: d["state"]["exp_avg_sq"]["W2"].__setitem__((0, 3), np.nan)),
            ValueError,
            "NaN or Inf",
        ),
        (edit(lambda d: d.update(t=-1)), ValueError, "t'] must be a whole number"),
        (edit(lambda d: d["hyperparameters"].update(lr=-1.0)), ValueError, "Invalid learning rate"),
        (edit(lambda d: d["hyperparameters"].pop("eps")), KeyError, "must hold exactly"),
        (edit(lambda d: d.pop("state")), KeyError, r"missing \['state'\]"),
    ]


def test_bad_state_dicts_are_refused_and_change_nothing():
    source = fastoptim.Adam(model(np.float32), lr=0.01)
    source.step(grads_at(1, model(np.float32)))
    sd = source.state_dict()
    target = fastoptim.Adam(model(np.float32), lr=0.5)
    target.step(grads_at(2, model(np.float32)))
    before = target.state_dict()
    for broken, error, message in broken_state_dicts(sd):
        with pytest.raises(error, match=message):
            target.load_state_dict(broken)
        after = target.state_dict()
        assert after["t"] == before["t"] and after["hyperparameters"] == before["hyperparameters"]
        for key in before["state"]:
            for name in before["state"][key]:
                np.testing.assert_array_equal(after["state"][key][name], before["state"][key][name])


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))])
@pytest.mark.parametrize("algorithm", WITH_CLASS, ids=lambda a: a.name)
def test_a_copied_optimizer_updates_its_own_buffers(algorithm, clone):
    original = algorithm.make_optimizer(model(np.float64), algorithm.hyperparameter_sets[0])
    original.step(grads_at(1, model(np.float64)))  # views of the buffers are made and cached
    twin = clone(original)
    before = [np.array(original.params.buffer)] + [
        np.array(s.buffer) for s in original.state.values()
    ]
    for t in range(2, 5):
        twin.step(grads_at(t, model(np.float64)))  # dict grads: the per-layer path
    after = [original.params.buffer] + [s.buffer for s in original.state.values()]
    for saved, current in zip(before, after, strict=True):
        np.testing.assert_array_equal(current, saved)
    reference = algorithm.make_optimizer(model(np.float64), algorithm.hyperparameter_sets[0])
    for t in range(1, 5):
        reference.step(grads_at(t, model(np.float64)))
    np.testing.assert_array_equal(twin.params.buffer, reference.params.buffer)
