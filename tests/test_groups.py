"""Groups of layers with their own lr and weight decay, and frozen layers, against a numpy
reference that runs each group's layers through the algorithm with that group's settings."""

from __future__ import annotations

import copy
import fnmatch

import numpy as np
import pytest
from registry import ALGORITHMS, ObjectAPI, random_grads, random_parameters
from tolerances import OperandScales, compare_with_reference

import fastoptim
from fastoptim import schedules
from fastoptim.reference import clipping

# interleaved on purpose: a FlatParams keeps this order, so its groups are several runs
SHAPES = {"W1": (40, 30), "b1": (40, 1), "W2": (10, 40), "b2": (10, 1), "emb": (25, 4)}
OBJECT_ALGORITHMS = [a for a in ALGORITHMS if a.make_optimizer is not None]
STEPS = 30


def group_specs(hp: dict) -> list[tuple[object, dict]]:
    """(selector, settings): biases without weight decay (or at half the rate where there
    is no decay), W2 on a schedule of its own, emb frozen."""
    has_decay = "weight_decay" in hp
    biases = {"weight_decay": 0.0} if has_decay else {"lr": hp["lr"] / 2}
    return [
        ("b*", biases),
        (["W2"], {"lr": schedules.Exponential(lr=hp["lr"] * 3, gamma=0.9)}),
        (lambda name: name == "emb", {"frozen": True}),
    ]


def grouped_hyperparameters(algorithm, dtype) -> dict:
    """The algorithm's last set (the sets with clipping come last or second). In float32,
    RMSprop with momentum runs it without L2 decay: ``grad + wd * p`` can cancel, and
    ``g / (sqrt(s) + eps)`` then amplifies the rounding by up to 1/eps, beyond the error
    model of tolerances.py (test_properties.py draws weight_decay = 0 for the same reason)."""
    hp = dict(algorithm.hyperparameter_sets[-1])
    if (
        dtype == np.float32
        and "momentum" in algorithm.name
        and algorithm.name.startswith("rmsprop")
    ):
        hp["weight_decay"] = 0.0
    return hp


def with_groups(hp: dict) -> dict:
    groups = [fastoptim.Group(selector, **settings) for selector, settings in group_specs(hp)]
    return {**hp, "groups": groups}


def _selected(selector, name: str) -> bool:
    if isinstance(selector, str):
        return fnmatch.fnmatchcase(name, selector)
    return selector(name) if callable(selector) else name in selector


class GroupedReference:
    """The float64 oracle, group by group: clip over every updated layer together, then
    update each group's layers with its settings (its lr evaluated at ``t``)."""

    def __init__(self, algorithm, parameters: dict, hp: dict) -> None:
        self.algorithm, self.hp = algorithm, dict(hp)
        self.parameters = {k: np.array(v, dtype=np.float64) for k, v in parameters.items()}
        self.states = algorithm.oracle_init(self.parameters, self.hp)
        assigned: dict[str, dict] = {}
        for selector, settings in group_specs(hp):
            for name in self.parameters:
                if _selected(selector, name):
                    assigned[name] = settings
        self.settings = {name: assigned.get(name, {}) for name in self.parameters}

    def step(self, grads: dict, t: int) -> None:
        hp = dict(self.hp)
        max_norm = hp.pop("max_grad_norm", None)
        updated = [n for n, s in self.settings.items() if not s.get("frozen")]
        grads = {"d" + n: np.asarray(grads["d" + n], dtype=np.float64) for n in updated}
        if max_norm is not None:
            grads = clipping.clip_by_global_norm(grads, max_norm)
        for name in updated:
            settings = self.settings[name]
            layer_hp = {**hp, **settings}
            if callable(layer_hp["lr"]):
                layer_hp["lr"] = layer_hp["lr"](t)
            params = {name: self.parameters[name]}
            states = tuple({"d" + name: state["d" + name]} for state in self.states)
            self.algorithm.oracle_update(
                params, {"d" + name: grads["d" + name]}, states, t, layer_hp
            )
            self.parameters[name] = params[name]
            for state, layer_state in zip(self.states, states, strict=True):
                state["d" + name] = layer_state["d" + name]

    def current(self):
        return self.parameters, self.states[: len(self.algorithm.state_names)]


class FlatParamsInOwnOrder(ObjectAPI):
    """The object API over a FlatParams the caller made: its order is kept, so each group
    is several runs of neighbouring layers."""

    def __init__(self, algorithm, parameters, hp) -> None:
        self.algorithm, self.grads_as = algorithm, "flat"
        flat = fastoptim.flatten(copy.deepcopy(parameters))
        self.optimizer = algorithm.make_optimizer(flat, hp)
        self.parameters = flat
        self.flat_grads = flat.zeros_like(prefix="d")


FAST = {
    "dict params, dict grads": lambda a, p, hp: ObjectAPI(a, p, hp, "dict"),
    "dict params, FlatParams grads": lambda a, p, hp: ObjectAPI(a, p, hp, "flat"),
    "dict params, flat array grads": lambda a, p, hp: ObjectAPI(a, p, hp, "array"),
    "FlatParams in its own order": FlatParamsInOwnOrder,
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("entry", FAST)
@pytest.mark.parametrize("algorithm", OBJECT_ALGORITHMS, ids=lambda a: a.name)
def test_groups_match_the_grouped_reference(algorithm, entry, dtype):
    initial = {k: v.astype(dtype) for k, v in random_parameters(SHAPES, seed=10).items()}
    hp = grouped_hyperparameters(algorithm, dtype)
    oracle = GroupedReference(algorithm, initial, hp)
    fast = FAST[entry](algorithm, initial, with_groups(hp))
    frozen_before = np.array(fast.optimizer.params["emb"])
    rng = np.random.default_rng(11)
    scales = OperandScales()
    for t in range(1, STEPS + 1):
        grads = {k: v.astype(dtype) for k, v in random_grads(SHAPES, rng).items()}
        before = dict(oracle.current()[0])
        oracle.step(grads, t)
        fast.step(grads, t)
        scales.update(grads, before, oracle.current()[0])
        compare_with_reference(fast, oracle, algorithm, dtype, t, scales)
    np.testing.assert_array_equal(fast.optimizer.params["emb"], frozen_before)


@pytest.mark.parametrize("algorithm", OBJECT_ALGORITHMS, ids=lambda a: a.name)
def test_a_plain_dict_is_laid_out_group_by_group_without_copies(algorithm):
    hp = algorithm.hyperparameter_sets[0]
    params = random_parameters(SHAPES, seed=12)
    opt = algorithm.make_optimizer(params, with_groups(hp))
    # default group (W1), biases, W2; emb (frozen) last: each group one contiguous range
    assert opt.layout.names == ("W1", "b1", "b2", "W2", "emb")
    pieces = opt.plan(opt.params.zeros_like(prefix="d"))  # the public stage of a step
    assert [piece.names for piece in pieces] == [("W1",), ("b1", "b2"), ("W2",)]
    buffers = (opt.params.buffer, *(state.buffer for state in opt.state.values()))
    for piece in pieces:
        views = (piece.param, *piece.states)
        used = [view for view in views if view.size]  # RMSprop: place-holders are empty
        assert len(used) == len(buffers)
        for view, buffer in zip(used, buffers, strict=True):
            assert np.shares_memory(view, buffer) and view.size == piece.grad.size
    assert params["b2"] is not None and np.shares_memory(params["b2"], opt.params.buffer)


def test_frozen_layers_need_no_gradient_and_are_never_read():
    params = random_parameters(SHAPES, seed=13)
    opt = fastoptim.Adam(params, lr=0.1, groups=[fastoptim.Group(["emb"], frozen=True)])
    frozen = np.array(params["emb"])
    grads = random_grads(SHAPES, np.random.default_rng(14))
    del grads["demb"]
    opt.step(grads)  # no gradient for the frozen layer
    full = random_grads(SHAPES, np.random.default_rng(15))
    full["demb"][0, 0] = np.nan  # a NaN where nothing reads is not a NaN step
    opt.step(full)
    assert opt.t == 2 and opt.nonfinite.skipped_steps == 0
    np.testing.assert_array_equal(params["emb"], frozen)
    np.testing.assert_array_equal(opt.state["exp_avg"]["emb"], 0.0)


def test_frozen_layers_stay_out_of_the_clipping_norm():
    params = random_parameters(SHAPES, seed=16)
    opt = fastoptim.SGD(
        params, lr=0.1, max_grad_norm=1.0, groups=[fastoptim.Group(["emb"], frozen=True)]
    )
    grads = random_grads(SHAPES, np.random.default_rng(17))
    grads["demb"] *= 1e6
    opt.step(grads)
    updated = [g for key, g in grads.items() if key != "demb"]
    expected = np.sqrt(sum(float(np.sum(g**2)) for g in updated))
    assert opt.last_grad_norm == pytest.approx(expected, rel=1e-12)


def test_group_settings_survive_state_dict_and_checkpoints(tmp_path):
    hp = {"lr": 0.01, "weight_decay": 0.1}
    initial = random_parameters(SHAPES, seed=18)
    first = fastoptim.AdamW(copy.deepcopy(initial), **with_groups(hp))
    rng = np.random.default_rng(19)
    for _ in range(3):
        first.step(random_grads(SHAPES, rng))
    saved = first.state_dict()
    assert saved["groups"][1]["lr"] == {"schedule": "Exponential", "lr": 0.03, "gamma": 0.9}
    fastoptim.save(tmp_path / "ckpt.npz", first)
    from_state = fastoptim.AdamW(copy.deepcopy(initial), **with_groups(hp))
    from_state.load_state_dict(saved)
    np.copyto(from_state.params.buffer, first.params.buffer)
    from_file = fastoptim.AdamW(copy.deepcopy(initial), **with_groups(hp))
    fastoptim.load(tmp_path / "ckpt.npz", from_file)
    grads = random_grads(SHAPES, rng)
    for opt in (first, from_state, from_file):
        opt.step(grads)
    for opt in (from_state, from_file):
        np.testing.assert_array_equal(opt.params.buffer, first.params.buffer)
        assert opt.groups == first.groups


def test_a_checkpoint_loads_into_another_layer_order(tmp_path):
    """Saved without groups (dict order), loaded with groups (grouped order): by name."""
    hp = {"lr": 0.01, "weight_decay": 0.1}
    plain = fastoptim.AdamW(random_parameters(SHAPES, seed=20), **hp)
    plain.step(random_grads(SHAPES, np.random.default_rng(21)))
    fastoptim.save(tmp_path / "plain.npz", plain)
    grouped = fastoptim.AdamW(
        random_parameters(SHAPES, seed=22), **hp, groups=[fastoptim.Group("b*", weight_decay=0)]
    )
    assert grouped.layout.names != plain.layout.names
    fastoptim.load(tmp_path / "plain.npz", grouped)
    assert grouped.t == 1
    for name in SHAPES:
        np.testing.assert_array_equal(grouped.params[name], plain.params[name])
        np.testing.assert_array_equal(grouped.state["exp_avg"][name], plain.state["exp_avg"][name])


def test_loading_state_saved_with_other_groups_is_refused_and_changes_nothing():
    grouped = fastoptim.Adam(random_parameters(SHAPES, seed=23), lr=0.01, groups=[
        fastoptim.Group("b*", weight_decay=0.0)
    ])  # fmt: skip
    grouped.step(random_grads(SHAPES, np.random.default_rng(24)))
    other = fastoptim.Adam(random_parameters(SHAPES, seed=23), lr=0.01, groups=[
        fastoptim.Group(["b1"], weight_decay=0.0)
    ])  # fmt: skip
    before = other.state_dict()
    with pytest.raises(ValueError, match=r"groups\[0\].*construct it with the groups"):
        other.load_state_dict(grouped.state_dict())
    after = other.state_dict()
    assert after["t"] == before["t"] == 0 and after["groups"] == before["groups"]


BAD_GROUPS = [
    (
        [fastoptim.Group("b*"), fastoptim.Group(["b1"])],
        ValueError,
        r"'b1' is in groups\[0\] and groups\[1\]",
    ),
    ([fastoptim.Group(["W9"])], KeyError, r"groups\[0\]\.layers names \['W9'\]"),
    ([fastoptim.Group("c*")], ValueError, r"groups\[0\] selects no layer.*'c\*'"),
    ([fastoptim.Group(lambda name: 1)], TypeError, r"predicate must return True or False"),
    ([fastoptim.Group(3)], TypeError, r"groups\[0\]\.layers must be a glob pattern"),
    ([fastoptim.Group("b*", lr=-1.0)], ValueError, r"groups\[0\]\.lr: Invalid learning rate"),
    ([fastoptim.Group("b*", weight_decay=-1)], ValueError, r"groups\[0\]\.weight_decay"),
    ([fastoptim.Group("b*", frozen=1)], TypeError, r"groups\[0\]\.frozen must be True or False"),
    ([{"layer": "b*"}], KeyError, r"groups\[0\] has keys \['layer'\]"),
    (fastoptim.Group("b*"), TypeError, r"groups must be a list of fastoptim.Group"),
    (["b*"], TypeError, r"groups\[0\] must be a fastoptim.Group or a dict"),
]


@pytest.mark.parametrize(("groups", "error", "message"), BAD_GROUPS)
def test_bad_groups_are_refused_before_anything_changes(groups, error, message):
    params = random_parameters(SHAPES, seed=25)
    originals = dict(params)
    with pytest.raises(error, match=message):
        fastoptim.Adam(params, groups=groups)
    assert all(params[key] is originals[key] for key in SHAPES)  # not rebound to a buffer


def test_momentum_groups_may_set_lr_but_not_weight_decay():
    params = random_parameters(SHAPES, seed=26)
    with pytest.raises(ValueError, match=r"groups\[0\] sets weight_decay, which this optimizer"):
        fastoptim.Momentum(params, groups=[fastoptim.Group("b*", weight_decay=0.0)])


def test_dict_groups_work_like_group_objects():
    made = [
        fastoptim.SGD(random_parameters(SHAPES, seed=27), lr=0.1, weight_decay=0.1, groups=groups)
        for groups in (
            [fastoptim.Group("b*", weight_decay=0.0, lr=0.2)],
            [{"layers": "b*", "weight_decay": 0.0, "lr": 0.2}],
        )
    ]
    grads = random_grads(SHAPES, np.random.default_rng(28))
    for opt in made:
        opt.step(grads)
    np.testing.assert_array_equal(made[0].params.buffer, made[1].params.buffer)
