"""state_dtype='bfloat16': every algorithm with state, through the flat and per-layer
paths, steps exactly as its float32 kernel over decoded state followed by stochastic
rounding with the documented random bits; the same bits for any thread count and after a
state_dict round trip; memory halved; bad state dtypes refused with nothing changed."""

from __future__ import annotations

import copy
import pickle

import numba
import numpy as np
import pytest
from registry import ALGORITHMS

import fastoptim
from fastoptim.kernels import bfloat16
from fastoptim.optim import state_dtypes

# layers over several chunks, odd sizes, a 0-d layer; below the parallel threshold (the
# parallel loops are compiled, for a few algorithms, by the thread test alone: compiling
# costs seconds each)
SHAPES = {"W1": (41, 290), "b1": (41, 1), "scale": (), "W2": (3, 1367), "b2": (3,)}
BIG = {"W1": (41, 500), "b1": (41, 1), "W2": (3, 4099)}  # past the parallel threshold
STATEFUL = [a for a in ALGORITHMS if a.stores_state_dtype]
TWO = min(2, numba.config.NUMBA_NUM_THREADS)


def _params(seed: int, shapes=SHAPES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: np.asarray(rng.standard_normal(s), np.float32) for k, s in shapes.items()}


def _grads(rng: np.random.Generator, shapes=SHAPES) -> dict[str, np.ndarray]:
    return {
        "d" + k: np.asarray(rng.standard_normal(s) * 10 ** rng.uniform(-3, 1), np.float32)
        for k, s in shapes.items()
    }


def _twin(opt: fastoptim.Optimizer, params, state_dtype: str, **overrides):
    """An optimizer of the same class and settings, with another state dtype."""
    hp = {**opt.hyperparameters(), "state_dtype": state_dtype, **overrides}
    return type(opt)(params, **hp)


def _bfloat16_pair(algorithm, hp, seed=0):
    float_opt = algorithm.make_optimizer(_params(seed), hp)
    return float_opt, _twin(float_opt, _params(seed), "bfloat16")


def _expected_codes(opt, float_opt, t):
    """The codes a bfloat16 step must store: the float32 kernel's new state (stepped from
    the decoded state) rounded with the bits of (step, stream, global element index)."""
    order = opt.declaration.states(opt.settings)  # kernel positions, None where absent
    streams = -(-len(order) // bfloat16.STATES_PER_STREAM)
    keys = state_dtypes.rounding_keys(t, streams)
    index = np.arange(opt.layout.size)
    expected = {}
    for position, name in enumerate(order):
        if name is None:
            continue
        stream = position // 2
        bits = bfloat16.random_bits(keys[stream], index, stream)
        if position % 2:
            bits = bits >> 16
        expected[name] = bfloat16.encode_array(float_opt.state[name].buffer, bits)
    return expected


@pytest.mark.parametrize("grads_as", ["flat", "dict"])
@pytest.mark.parametrize("algorithm", STATEFUL, ids=lambda a: a.name)
def test_a_bfloat16_step_is_the_float32_step_of_the_decoded_state_rounded_stochastically(
    algorithm, grads_as
):
    for hp in algorithm.hyperparameter_sets:
        float_opt, opt = _bfloat16_pair(algorithm, hp)
        flat = opt.params.zeros_like(prefix="d")
        rng = np.random.default_rng(1)
        for t in range(1, 5):
            for name in opt.state_names:  # the float32 twin starts from the decoded state
                np.copyto(
                    float_opt.state[name].buffer, bfloat16.decode_array(opt.state[name].buffer)
                )
            np.copyto(float_opt.params.buffer, opt.params.buffer)
            grads = _grads(rng)
            for key, value in grads.items():
                flat[key][...] = value
            float_opt.step(flat if grads_as == "flat" else grads)
            opt.step(flat if grads_as == "flat" else grads)
            assert opt.t == t
            np.testing.assert_array_equal(opt.params.buffer, float_opt.params.buffer)
            for name, codes in _expected_codes(opt, float_opt, t).items():
                np.testing.assert_array_equal(opt.state[name].buffer, codes, err_msg=name)


# one state, two, three (two random streams) and a gated one: the loop's every shape
THREADED = [a for a in STATEFUL if a.name in ("lion", "adam-torch", "adamw amsgrad", "sgd")]


def stored_bytes(opt: fastoptim.Optimizer) -> list[bytes]:
    """Every buffer an optimizer steps, as bytes: parameters, state, int8's scales and
    small layers."""
    held = () if opt.int8 is None else opt.int8.buffers()
    return [opt.params.buffer.tobytes()] + [
        b.tobytes() for b in (*(s.buffer for s in opt.state.values()), *held)
    ]


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("algorithm", THREADED, ids=lambda a: a.name)
def test_low_precision_state_gives_the_same_bits_for_one_and_two_threads(algorithm, state_dtype):
    def run(threads):
        float_opt = algorithm.make_optimizer(_params(0, BIG), algorithm.hyperparameter_sets[0])
        opt = _twin(float_opt, _params(0, BIG), state_dtype)
        rng = np.random.default_rng(3)
        with fastoptim.num_threads(threads):
            for _ in range(3):
                opt.step(_grads(rng, BIG))
        return stored_bytes(opt)

    assert len(THREADED) == 4
    assert fastoptim.config.SERIAL_BELOW <= 41 * 500
    assert run(1) == run(TWO)


@pytest.mark.parametrize("algorithm", STATEFUL, ids=lambda a: a.name)
def test_bfloat16_state_round_trips_through_state_dict_pickle_and_save(algorithm, tmp_path):
    _, opt = _bfloat16_pair(algorithm, algorithm.hyperparameter_sets[0])
    rng = np.random.default_rng(4)
    for _ in range(3):
        opt.step(_grads(rng))
    saved = opt.state_dict()
    assert saved["hyperparameters"]["state_dtype"] == "bfloat16"
    assert all(a.dtype == np.uint16 for s in saved["state"].values() for a in s.values())
    assert_round_trips(opt, _grads(rng), tmp_path)


def assert_round_trips(opt: fastoptim.Optimizer, grads, tmp_path) -> None:
    """A copy of ``opt`` through load_state_dict(state_dict()), deepcopy, pickle and
    save/load each takes the next step with ``grads`` to the same bits as ``opt``."""
    restored = _twin(opt, _params(9), opt.state_dtype)
    restored.load_state_dict(opt.state_dict())
    np.copyto(restored.params.buffer, opt.params.buffer)
    copied = copy.deepcopy(opt)
    unpickled = pickle.loads(pickle.dumps(opt))
    path = tmp_path / "checkpoint"
    fastoptim.save(path, opt)
    loaded = _twin(opt, _params(9), opt.state_dtype)
    fastoptim.load(path, loaded)
    others = [restored, copied, unpickled, loaded]
    for each in [opt, *others]:
        each.step(grads)
    for other in others:
        assert stored_bytes(other) == stored_bytes(opt)


def test_a_checkpoint_of_another_state_dtype_loads_only_by_an_explicit_conversion():
    adam = fastoptim.Adam(_params(0), state_dtype="bfloat16")
    adam.step(_grads(np.random.default_rng(0)))
    float_adam = fastoptim.Adam(_params(0))
    float_adam.step(_grads(np.random.default_rng(0)))
    before = {k: s.buffer.copy() for k, s in adam.state.items()}
    with pytest.raises(ValueError, match=r"state_dtype.*convert_state_dtype"):
        adam.load_state_dict(float_adam.state_dict())
    assert adam.t == 1 and all((adam.state[k].buffer == v).all() for k, v in before.items())
    with pytest.raises(ValueError, match=r"state_dtype.*convert_state_dtype"):
        float_adam.load_state_dict(adam.state_dict())
    # converted: float32 -> bfloat16 rounds to nearest once; bfloat16 -> float32 is exact
    adam.load_state_dict(fastoptim.convert_state_dtype(float_adam.state_dict(), "bfloat16"))
    for name in adam.state_names:
        np.testing.assert_array_equal(
            adam.state[name].buffer,
            bfloat16.encode_array(float_adam.state[name].buffer, bfloat16.ROUND_TO_NEAREST),
        )
    float_adam.load_state_dict(fastoptim.convert_state_dtype(adam.state_dict(), "float32"))
    for name in adam.state_names:
        np.testing.assert_array_equal(
            float_adam.state[name].buffer, bfloat16.decode_array(adam.state[name].buffer)
        )


def test_state_bytes_per_parameter():
    n = sum(int(np.prod(s)) for s in SHAPES.values())
    assert fastoptim.Adam(_params(0)).state_nbytes == 8 * n
    assert fastoptim.Adam(_params(0), state_dtype="bfloat16").state_nbytes == 4 * n
    assert fastoptim.Adam(_params(0), state_dtype="bfloat16", amsgrad=True).state_nbytes == 6 * n
    assert fastoptim.SGD(_params(0), momentum=0.9, state_dtype="bfloat16").state_nbytes == 2 * n


@pytest.mark.parametrize(
    ("dtype", "state_dtype", "match"),
    [
        (np.float32, "int4", r"state_dtype must be one of \['float32', 'float64', 'bfloat16', 'int8'"),
        (np.float32, np.float16, r"state_dtype must be one of"),
        (np.float64, "bfloat16", r"state_dtype='bfloat16' does not work with float64 "
         r"parameters; with float64 parameters use state_dtype in \['float64'\]"),
        (np.float32, "float64", r"with float32 parameters use state_dtype in "
         r"\['float32', 'bfloat16', 'int8'\]"),
        (np.float64, "int8", r"state_dtype='int8' does not work with float64 parameters; "
         r"with float64 parameters use state_dtype in \['float64'\]"),
    ],
)  # fmt: skip
def test_a_state_dtype_that_does_not_work_is_refused_and_nothing_changes(dtype, state_dtype, match):
    params = {k: v.astype(dtype) for k, v in _params(0).items()}
    entries = dict(params)
    with pytest.raises(ValueError, match=match):
        fastoptim.Adam(params, state_dtype=state_dtype)
    assert all(params[k] is entries[k] for k in params)  # not flattened, not rebound


# Rprop keeps signs and step sizes; ASGD's average is the model to evaluate, which 8 or 16
# bits would round
@pytest.mark.parametrize("name", ["Rprop", "ASGD"])
@pytest.mark.parametrize("option", [{"state_dtype": "bfloat16"}, {"block_size": 512}])
def test_an_algorithm_whose_state_is_not_averages_refuses_a_state_dtype(name, option):
    params = _params(0)
    entries = dict(params)
    with pytest.raises(
        TypeError, match=rf"{name} takes no (state_dtype|block_size): its state.*NAdam"
    ):
        getattr(fastoptim, name)(params, **option)
    assert all(params[k] is entries[k] for k in params)


def test_the_state_dtype_cannot_change_after_construction():
    adam = fastoptim.Adam(_params(0), state_dtype="bfloat16")
    with pytest.raises(ValueError, match=r"state_dtype decide.*construct a new optimizer"):
        adam.set_hyperparameters(state_dtype="float32")
    assert adam.state_dtype == "bfloat16" and adam.hyperparameters()["state_dtype"] == "bfloat16"


def test_the_default_is_the_parameters_dtype_and_keeps_torch_numbers():
    assert fastoptim.Adam(_params(0)).state_dtype == "float32"
    params64 = {k: v.astype(np.float64) for k, v in _params(0).items()}
    assert fastoptim.Adam(params64).hyperparameters()["state_dtype"] == "float64"


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_low_precision_adam_tracks_float32_adam_on_a_least_squares_problem(state_dtype):
    """Not the convergence study (the bench's): a sanity check that the stored state is
    accurate enough for Adam to reach the same loss on a regression (4096 weights: int8
    quantizes the layer)."""
    rng = np.random.default_rng(5)
    features = rng.standard_normal((512, 4096)).astype(np.float32) / 64
    target = features @ rng.standard_normal(4096).astype(np.float32)

    def train(state_dtype):
        params = {"w": np.zeros(4096, np.float32)}
        opt = fastoptim.Adam(params, lr=0.01, state_dtype=state_dtype)
        for _ in range(300):
            residual = features @ params["w"] - target
            opt.step({"w": (features.T @ residual / len(target)).astype(np.float32)})
        return float(np.mean((features @ params["w"] - target) ** 2))

    start = float(np.mean(target**2))
    float_loss, low_loss = train("float32"), train(state_dtype)
    assert float_loss < 1e-2 * start
    assert low_loss < 1.5 * float_loss + 1e-4 * start
