"""Property tests: random layouts, dtypes, hyper-parameters and step counts.

Every entry point agrees with the reference; FlatParams views always alias the buffer;
state_dict and checkpoint files round-trip. The default run keeps the examples few; the
heavy profile (``pytest -m heavy``) runs the same properties on many more, larger cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry import ALGORITHMS, ENTRY_POINTS, Reference, entry_points_for
from tolerances import OperandScales, compare_with_reference

import fastoptim

DIM = st.integers(0, 7)
SHAPES = st.one_of(
    st.just(()),
    st.tuples(st.integers(0, 5000)),
    st.tuples(DIM, DIM),
    st.tuples(DIM, DIM, st.integers(0, 4)),
)


@st.composite
def layouts(draw, max_layers: int) -> dict[str, tuple[int, ...]]:
    """Course-style names (W1, b1, ...) or arbitrary ones, in a random order."""
    n_layers = draw(st.integers(0, max_layers))
    if draw(st.booleans()):
        names = [f"{kind}{i}" for i in range(1, n_layers // 2 + 2) for kind in "Wb"][:n_layers]
    else:
        names = draw(
            st.lists(
                st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
                min_size=n_layers,
                max_size=n_layers,
                unique=True,
            )
        )
    return {name: draw(SHAPES) for name in names}


HYPERPARAMETERS = {
    "momentum": st.fixed_dictionaries({"lr": st.floats(0, 1), "beta": st.floats(0, 0.999)}),
    "adam": st.fixed_dictionaries(
        {
            "lr": st.floats(0, 0.1),
            "beta1": st.floats(0, 0.99),
            "beta2": st.floats(0.5, 0.9999),
            "eps": st.floats(1e-8, 1e-2),
        }
    ),
    "gd": st.fixed_dictionaries({"lr": st.floats(0, 1)}),
    "momentum clipped": st.fixed_dictionaries(
        {
            "lr": st.floats(0, 1),
            "beta": st.floats(0, 0.999),
            "max_grad_norm": st.floats(1e-3, 1e3),
        }
    ),
}
TORCH_ADAM = st.fixed_dictionaries(
    {
        "lr": st.floats(0, 0.1),
        "betas": st.tuples(st.floats(0, 0.99), st.floats(0.5, 0.9999)),
        "eps": st.floats(1e-8, 1e-2),
        "weight_decay": st.floats(0, 1),
        "maximize": st.booleans(),
    }
)
for name in ("adam-torch", "adam-torch amsgrad", "adamw", "adamw amsgrad"):
    HYPERPARAMETERS[name] = TORCH_ADAM
# As for RMSprop below: with L2 decay, g = grad + wd * p can cancel in float32, and the step
# g / (sqrt(s) + eps) amplifies that by up to lr / eps (Adagrad with lr 0.5 and eps 1.7e-4,
# at step 1: 3e-5 off, found with another seed). That is beyond tests/tolerances.py's model,
# so in float32 these draw no L2 decay; float64 and the registry's option sets keep it.
L2_DECAY_DIVIDED = ("adam-torch", "adam-torch amsgrad", "adagrad")
HYPERPARAMETERS["adagrad"] = st.fixed_dictionaries(
    {
        "lr": st.floats(0, 0.5),
        "lr_decay": st.floats(0, 0.1),
        "weight_decay": st.floats(0, 1),
        "initial_accumulator_value": st.floats(0, 1),
        "eps": st.floats(1e-10, 1e-3),
        "maximize": st.booleans(),
    }
)
for centered in (False, True):
    for momentum in (False, True):
        name = "rmsprop" + (" centered" if centered else "") + (" momentum" if momentum else "")
        HYPERPARAMETERS[name] = st.fixed_dictionaries(
            {
                "lr": st.floats(0, 0.1),
                # centered with alpha near 0 estimates a variance of ~0 as s - g_avg**2,
                # which rounds below 0 in float32 (NaN, in torch too) but not in float64
                "alpha": st.floats(0.5 if centered else 0.0, 0.999),
                "eps": st.floats(1e-8, 1e-2),
                # with L2 decay, g = grad + wd * p can cancel in float32 and g / (sqrt(s) + eps)
                # amplifies that by up to 1 / eps: beyond tests/tolerances.py's model, which
                # scales state errors by the gradient's magnitude (left for the registry)
                "weight_decay": st.just(0.0),
                "momentum": st.floats(0.01, 0.99) if momentum else st.just(0.0),
                "centered": st.just(centered),
                "maximize": st.booleans(),
            }
        )
ADAM_VARIANT = {
    "lr": st.floats(0, 0.1),
    "betas": st.tuples(st.floats(0, 0.99), st.floats(0.5, 0.9999)),
    "eps": st.floats(1e-8, 1e-2),
    "weight_decay": st.floats(0, 1),
    "maximize": st.booleans(),
}
HYPERPARAMETERS["nadam"] = st.fixed_dictionaries(
    {
        **ADAM_VARIANT,
        "momentum_decay": st.floats(0, 0.1),
        "decoupled_weight_decay": st.booleans(),
    }
)
HYPERPARAMETERS["radam"] = st.fixed_dictionaries(
    {**ADAM_VARIANT, "decoupled_weight_decay": st.booleans()}
)
HYPERPARAMETERS["adamax"] = st.fixed_dictionaries(ADAM_VARIANT)
HYPERPARAMETERS["adadelta"] = st.fixed_dictionaries(
    {
        "lr": st.floats(0, 1),
        "rho": st.floats(0, 1),
        "eps": st.floats(1e-8, 1e-2),
        "weight_decay": st.floats(0, 1),
        "maximize": st.booleans(),
    }
)
HYPERPARAMETERS["rprop"] = st.fixed_dictionaries(
    {
        "lr": st.floats(0, 0.1),
        "etas": st.tuples(st.floats(0.1, 0.9), st.floats(1.1, 2.0)),
        "step_sizes": st.tuples(st.floats(0, 1e-3), st.floats(1e-3, 50)),
        "maximize": st.booleans(),
    }
)
HYPERPARAMETERS["asgd"] = st.fixed_dictionaries(
    {
        "lr": st.floats(0, 0.1),
        "lambd": st.floats(0, 1),
        "alpha": st.floats(0, 2),
        "t0": st.floats(-10, 10),
        "weight_decay": st.floats(0, 1),
        "maximize": st.booleans(),
    }
)
# these divide by a denominator that can be as small as eps, as Adagrad's (above)
L2_DECAY_DIVIDED += ("nadam", "radam", "adamax", "adadelta")
HYPERPARAMETERS["lion"] = st.fixed_dictionaries(
    {
        "lr": st.floats(0, 0.1),
        "betas": st.tuples(st.floats(0, 0.999), st.floats(0, 0.999)),
        "weight_decay": st.floats(0, 1),
        "maximize": st.booleans(),
    }
)
HYPERPARAMETERS["schedule-free"] = st.fixed_dictionaries(
    {
        **ADAM_VARIANT,
        "warmup_steps": st.integers(0, 4),
        "r": st.floats(0, 2),
        "weight_lr_power": st.floats(0, 3),
    }
)
HYPERPARAMETERS["sgd"] = st.fixed_dictionaries(
    {
        "lr": st.floats(0, 1),
        "momentum": st.floats(0.01, 0.99),
        "dampening": st.just(0.0),
        "weight_decay": st.floats(0, 1),
        "nesterov": st.booleans(),
        "maximize": st.booleans(),
    }
) | st.fixed_dictionaries(
    {
        "lr": st.floats(0, 1),
        "momentum": st.floats(0, 0.99),
        "dampening": st.floats(0, 0.9),
        "weight_decay": st.floats(0, 1),
        "nesterov": st.just(False),
        "maximize": st.booleans(),
    }
)


@st.composite
def cases(draw, max_layers: int):
    algorithm = draw(st.sampled_from(ALGORITHMS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    hp = draw(HYPERPARAMETERS[algorithm.name])
    if dtype == np.float32 and algorithm.name in L2_DECAY_DIVIDED:
        hp = {**hp, "weight_decay": 0.0}
    return {
        "algorithm": algorithm,
        "entry": draw(st.sampled_from(entry_points_for(algorithm))),
        "shapes": draw(layouts(max_layers)),
        "dtype": dtype,
        "hp": hp,
        "steps": draw(st.integers(1, 5)),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


DEFAULT = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAVY = settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))


# -- every entry point agrees with the reference -------------------------------------------
def check_parity(case) -> None:
    shapes, dtype = case["shapes"], case["dtype"]
    rng = np.random.default_rng(case["seed"])
    initial = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    oracle = Reference(case["algorithm"], initial, case["hp"])
    fast = ENTRY_POINTS[case["entry"]](case["algorithm"], initial, case["hp"])
    scales = OperandScales()
    for t in range(1, case["steps"] + 1):
        grads = {"d" + k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
        before = dict(oracle.current()[0])
        oracle.step(grads, t)
        fast.step(grads, t)
        scales.update(grads, before, oracle.current()[0])
        compare_with_reference(fast, oracle, case["algorithm"], dtype, t, scales)


@DEFAULT
@given(case=cases(max_layers=12))
def test_every_entry_point_agrees_with_the_reference(case):
    check_parity(case)


@pytest.mark.heavy
@HEAVY
@given(case=cases(max_layers=50))
def test_every_entry_point_agrees_with_the_reference_heavy(case):
    check_parity(case)


# -- views alias the buffer -----------------------------------------------------------------
def check_views(shapes, dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    parameters = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    flat = fastoptim.flatten(parameters)
    assert list(flat) == list(parameters) and flat.buffer.size == flat.layout.size
    assert flat.buffer.size == 0 or flat.buffer.ctypes.data % 64 == 0  # first element
    for name, value in parameters.items():
        view = flat[name]
        assert view.shape == value.shape and view.dtype == dtype
        np.testing.assert_array_equal(view, value)
        assert view.size == 0 or np.shares_memory(view, flat.buffer)
        span = flat.layout.span(name)
        flat.buffer[span] = np.arange(view.size)  # a write to the buffer shows in the view
        np.testing.assert_array_equal(view.ravel(), np.arange(view.size))
        flat[name] = value  # and assignment copies into the buffer, keeping the view
        np.testing.assert_array_equal(flat.buffer[span], value.ravel())


@DEFAULT
@given(shapes=layouts(max_layers=12), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_views_always_alias_the_buffer(shapes, dtype, seed):
    check_views(shapes, dtype, seed)


@pytest.mark.heavy
@HEAVY
@given(shapes=layouts(max_layers=50), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_views_always_alias_the_buffer_heavy(shapes, dtype, seed):
    check_views(shapes, dtype, seed)


# -- state_dict and checkpoint files round-trip ----------------------------------------------
def check_round_trip(case, directory) -> None:
    algorithm = case["algorithm"]
    if algorithm.make_optimizer is None:
        return
    shapes, dtype = case["shapes"], case["dtype"]
    rng = np.random.default_rng(case["seed"])
    parameters = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    opt = algorithm.make_optimizer(parameters, case["hp"])
    for _ in range(case["steps"]):
        opt.step({"d" + k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()})
    fresh = {k: np.zeros(s, dtype) for k, s in shapes.items()}
    from_dict = algorithm.make_optimizer(dict(fresh), algorithm.hyperparameter_sets[0])
    from_dict.load_state_dict(opt.state_dict())
    path = directory / "ckpt.npz"
    fastoptim.save(path, opt)
    from_file = algorithm.make_optimizer(dict(fresh), algorithm.hyperparameter_sets[0])
    fastoptim.load(path, from_file)
    for restored in (from_dict, from_file):
        assert restored.t == opt.t and restored.hyperparameters() == opt.hyperparameters()
        for key in opt.state:
            assert restored.state[key].buffer.tobytes() == opt.state[key].buffer.tobytes()
    assert from_file.params.buffer.tobytes() == opt.params.buffer.tobytes()


@DEFAULT
@given(case=cases(max_layers=12))
def test_state_dict_and_checkpoints_round_trip(case, tmp_path_factory):
    check_round_trip(case, tmp_path_factory.mktemp("ckpt"))


@pytest.mark.heavy
@HEAVY
@given(case=cases(max_layers=50))
def test_state_dict_and_checkpoints_round_trip_heavy(case, tmp_path_factory):
    check_round_trip(case, tmp_path_factory.mktemp("ckpt"))
