"""Course gradients flattened the obvious way, ``fastoptim.flatten(grads)`` (layers named
'dW1', 'db1', ...), line up with ``fastoptim.flatten(parameters)``: every entry point takes
them in one kernel call and gives the bits of the dict path. With the course's other
keys in them (``dA1``, ``dZ1``: backward returns those too) the drop-ins read them by key,
as the reference does. The decision is made once per pair of layouts."""

from __future__ import annotations

import numpy as np
import pytest
from registry import ALGORITHMS, COURSE_ALGORITHMS, random_grads, random_parameters

import fastoptim
from fastoptim.compat.course_dicts import course_segments

SHAPES = {"W1": (5, 2), "b1": (5, 1), "W2": (3, 5), "b2": (3, 1), "W3": (1, 3), "b3": (1, 1)}
BACKWARD_EXTRAS = {"dA1": (5, 8), "dZ1": (5, 8), "dA2": (3, 8), "dZ3": (1, 8)}


def course_grads(rng, with_extras: bool) -> dict[str, np.ndarray]:
    grads = random_grads(SHAPES, rng)
    if with_extras:  # in the order the course's backward pass returns them: mixed in
        grads = {**{k: rng.standard_normal(s) for k, s in BACKWARD_EXTRAS.items()}, **grads}
    return grads


@pytest.mark.parametrize("with_extras", [False, True], ids=["gradients only", "with dA, dZ"])
@pytest.mark.parametrize("algorithm", COURSE_ALGORITHMS, ids=lambda a: a.name)
def test_drop_ins_take_flattened_course_grads(algorithm, with_extras):
    parameters = random_parameters(SHAPES, seed=4)
    rng_flat, rng_dict = np.random.default_rng(5), np.random.default_rng(5)
    for hp in algorithm.hyperparameter_sets:
        flat = fastoptim.flatten({k: v.copy() for k, v in parameters.items()})
        flat_states = algorithm.course_init(fastoptim, flat)
        plain = {k: v.copy() for k, v in parameters.items()}
        plain_states = algorithm.course_init(fastoptim, plain)
        for t in range(1, 4):
            flattened = fastoptim.flatten(course_grads(rng_flat, with_extras))
            if not with_extras:  # one segment: one kernel call over the whole buffer
                states = [(state, "state") for state in flat_states]
                assert len(course_segments(flat, flattened, states)) == 1
            algorithm.course_update(fastoptim, flat, flattened, flat_states, t, hp)
            grads = course_grads(rng_dict, with_extras)
            algorithm.course_update(fastoptim, plain, grads, plain_states, t, hp)
        for name in SHAPES:
            np.testing.assert_array_equal(flat[name], plain[name], err_msg=name)


@pytest.mark.parametrize(
    "algorithm", [a for a in ALGORITHMS if a.make_optimizer], ids=lambda a: a.name
)
def test_the_object_api_takes_flattened_course_grads(algorithm):
    parameters = random_parameters(SHAPES, seed=4)
    rng_flat, rng_dict = np.random.default_rng(6), np.random.default_rng(6)
    for hp in algorithm.hyperparameter_sets:
        from_flat = algorithm.make_optimizer({k: v.copy() for k, v in parameters.items()}, hp)
        from_dict = algorithm.make_optimizer({k: v.copy() for k, v in parameters.items()}, hp)
        for _ in range(3):
            from_flat.step(fastoptim.flatten(course_grads(rng_flat, with_extras=False)))
            from_dict.step(course_grads(rng_dict, with_extras=False))
        np.testing.assert_array_equal(from_flat.params.buffer, from_dict.params.buffer)


def test_lining_up_is_decided_once_per_pair_of_layouts(monkeypatch):
    params = fastoptim.flatten(random_parameters(SHAPES, seed=1))
    grads = fastoptim.flatten(random_grads(SHAPES, np.random.default_rng(1)))
    assert grads.layout.lines_up_with(params.layout)
    calls = []
    import fastoptim.flat.layout as layout_module

    real = layout_module.name_relation
    monkeypatch.setattr(layout_module, "name_relation", lambda *a: calls.append(1) or real(*a))
    opt = fastoptim.Adam(params, nonfinite="ignore")
    for _ in range(5):
        opt.step(grads)
    assert calls == []  # the verdict was kept from the first comparison


@pytest.mark.parametrize(
    ("names", "difference"),
    [
        (["dW1", "db1", "dW2"], None),
        (["W1", "b1", "W2"], None),
        (["dW1", "b1", "dW2"], "the layer names of grads mix the course's 'd' prefix"),
        (["dW1", "db2", "dW2"], "layer 1 of grads is 'db2' (2, 1) where the parameters have 'b1'"),
        (["ddW1", "ddb1", "ddW2"], "layer 0 of grads is 'ddW1' (2, 3) where the parameters have"),
    ],
)
def test_names_line_up_equal_or_with_the_course_d_throughout(names, difference):
    shapes = [(2, 3), (2, 1), (1, 2)]
    params = fastoptim.Layout(["W1", "b1", "W2"], shapes, np.float64)
    layout = fastoptim.Layout(names, shapes, np.float64)
    assert layout.lines_up_with(params) is (difference is None)
    if difference is not None:  # the message says what differs
        assert difference in fastoptim.flat.layout_difference(layout, params, "grads")
    other_shapes = fastoptim.Layout(names, [(3, 2), (2, 1), (1, 2)], np.float64)
    assert not other_shapes.lines_up_with(params)
    assert not fastoptim.Layout(names, shapes, np.float32).lines_up_with(params)
