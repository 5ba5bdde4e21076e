"""Bad input, systematically: for every entry point and algorithm, each case raises the
right error type with a message that names the layer or argument and says how to fix it,
and leaves parameters, gradients, state and the step counter bit-for-bit unchanged."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from registry import ALGORITHMS, COURSE_ALGORITHMS

import fastoptim

CLASS_ALGORITHMS = [a for a in ALGORITHMS if a.make_optimizer]


def course_model():
    rng = np.random.default_rng(0)
    parameters = {
        "W1": rng.standard_normal((3, 2)),
        "b1": rng.standard_normal((3, 1)),
        "W2": rng.standard_normal((1, 3)),
        "b2": rng.standard_normal((1, 1)),
    }
    grads = {"d" + k: rng.standard_normal(v.shape) for k, v in parameters.items()}
    return parameters, grads


def arrays_of(value):
    """Every array reachable from ``value`` (dicts, FlatParams, lists), as independent copies."""
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True)
    if isinstance(value, fastoptim.FlatParams):
        return {"buffer": np.array(value.buffer, copy=True), **arrays_of(dict(value))}
    if isinstance(value, dict):
        return {k: arrays_of(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [arrays_of(v) for v in value]
    return copy.deepcopy(value)


def assert_bitwise_equal(before, after, where="inputs"):
    if isinstance(before, np.ndarray):
        assert after.dtype == before.dtype and after.shape == before.shape, where
        assert after.tobytes() == before.tobytes(), where
    elif isinstance(before, dict):
        assert before.keys() == after.keys(), where
        for key in before:
            assert_bitwise_equal(before[key], after[key], f"{where}[{key!r}]")
    elif isinstance(before, list):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            assert_bitwise_equal(b, a, f"{where}[{i}]")
    else:
        assert before == after or (before != before and after != after), where  # NaN


# -- the course drop-ins on plain dicts -----------------------------------------------------
def _grad(key, value):
    return lambda c: c["grads"].__setitem__(key, value(c))


def _param(key, value):
    return lambda c: c["parameters"].__setitem__(key, value(c))


def _read_only(container, key, state=None):
    def breaks(c):
        target = c[container] if state is None else c["states"][state]
        target[key].flags.writeable = False

    return breaks


FIX = r".*(?i:convert|pass|must match|key|build)"  # every message says what to do

COURSE_DICT_CASES = [
    (
        "bias grad (n,) for (n, 1)",
        _grad("db1", lambda c: np.ones(3)),
        ValueError,
        r"grads\['db1'\] has shape \(3,\) but parameters\['b1'\] has shape \(3, 1\)" + FIX,
    ),
    (
        "transposed weight grad",
        _grad("dW1", lambda c: c["grads"]["dW1"].T.copy()),
        ValueError,
        r"grads\['dW1'\] has shape \(2, 3\) but parameters\['W1'\] has shape \(3, 2\)" + FIX,
    ),
    (
        "missing grad",
        lambda c: c["grads"].pop("db2"),
        KeyError,
        r"grads has no 'db2' for parameters\['b2'\]" + FIX,
    ),
    (
        "grad of a layer that does not exist",
        _grad("dW3", lambda c: np.ones((1, 1))),
        KeyError,
        r"grads has 'dW3' but there is no parameters\['W3'\]" + FIX,
    ),
    (
        "float32 grad for float64 param",
        _grad("dW2", lambda c: np.ones((1, 3), np.float32)),
        TypeError,
        r"grads\['dW2'\] is float32 but parameters\['W2'\] is float64" + FIX,
    ),
    (
        "integer grad",
        _grad("dW1", lambda c: np.ones((3, 2), np.int64)),
        TypeError,
        r"grads\['dW1'\] has dtype int64; .*float32 or float64 only" + FIX,
    ),
    (
        "float16 grad",
        _grad("dW1", lambda c: np.ones((3, 2), np.float16)),
        TypeError,
        r"grads\['dW1'\] has dtype float16" + FIX,
    ),
    (
        "complex grad",
        _grad("dW1", lambda c: np.ones((3, 2), np.complex128)),
        TypeError,
        r"grads\['dW1'\] has dtype complex128" + FIX,
    ),
    (
        "object grad",
        _grad("dW1", lambda c: np.ones((3, 2), object)),
        TypeError,
        r"grads\['dW1'\] has dtype object" + FIX,
    ),
    (
        "list grad",
        _grad("dW1", lambda c: [[1.0, 2.0]] * 3),
        TypeError,
        r"grads\['dW1'\] must be a numpy array; got list",
    ),
    (
        "integer param",
        _param("b2", lambda c: np.ones((1, 1), np.int32)),
        TypeError,
        r"parameters\['b2'\] has dtype int32" + FIX,
    ),
    (
        "read-only param",
        _read_only("parameters", "W2"),
        ValueError,
        r"parameters\['W2'\] is read-only" + FIX,
    ),
    (
        "grad aliasing its param",
        _grad("dW1", lambda c: c["parameters"]["W1"]),
        ValueError,
        r"grads\['dW1'\] shares memory with parameters\['W1'\]" + FIX,
    ),
    (
        "grad a view of its param",
        _grad("db1", lambda c: c["parameters"]["b1"][::-1]),
        ValueError,
        r"grads\['db1'\] shares memory with parameters\['b1'\]" + FIX,
    ),
    (
        "negative lr",
        lambda c: c["hp"].update(lr=-0.1),
        ValueError,
        r"Invalid learning rate: -0.1 \(learning_rate must be",
    ),
    ("NaN lr", lambda c: c["hp"].update(lr=float("nan")), ValueError, "Invalid learning rate: nan"),
    (
        "infinite lr",
        lambda c: c["hp"].update(lr=float("inf")),
        ValueError,
        "Invalid learning rate: inf",
    ),
]
STATE_CASES = [
    (
        "read-only state",
        _read_only("states", "dW1", state=0),
        ValueError,
        r"\['dW1'\] is read-only" + FIX,
    ),
    (
        "state of another shape",
        lambda c: c["states"][0].__setitem__("db1", np.zeros(3)),
        ValueError,
        r"\['db1'\] has shape \(3,\) but parameters\['b1'\] has shape" + FIX,
    ),
    (
        "state aliasing its param",
        lambda c: c["states"][0].__setitem__("dW2", c["parameters"]["W2"]),
        ValueError,
        r"\['dW2'\] shares memory with parameters\['W2'\]" + FIX,
    ),
    (
        "state of another model",
        lambda c: c["states"][0].__setitem__("dW7", np.zeros(1)),
        KeyError,
        r"has 'dW7' but there is no parameters\['W7'\]" + FIX,
    ),
]
HYPERPARAMETER_CASES = {
    "momentum": [
        ("beta 1", lambda c: c["hp"].update(beta=1.0), ValueError, r"beta must be in \[0, 1\)"),
        ("beta < 0", lambda c: c["hp"].update(beta=-0.1), ValueError, r"beta must be in \[0, 1\)"),
    ],
    "adam": [
        ("beta1 1", lambda c: c["hp"].update(beta1=1.0), ValueError, r"beta1 must be in \[0, 1\)"),
        ("beta2 NaN", lambda c: c["hp"].update(beta2=float("nan")), ValueError, "beta2 must be"),
        ("eps 0", lambda c: c["hp"].update(eps=0.0), ValueError, "epsilon must be"),
        ("eps NaN", lambda c: c["hp"].update(eps=float("nan")), ValueError, "epsilon must be"),
        ("t 0", lambda c: c.update(t=0), ValueError, r"t must be a whole number >= 1"),
        ("t 2.5", lambda c: c.update(t=2.5), ValueError, "Invalid step: 2.5"),
        (
            "v is s",
            lambda c: c["states"].__setitem__(1, c["states"][0]),
            ValueError,
            r"s\['dW1'\] shares memory with v\['dW1'\]" + FIX,
        ),
    ],
    "gd": [],
}


def course_cases(algorithm):
    cases = COURSE_DICT_CASES + HYPERPARAMETER_CASES[algorithm.name]
    if algorithm.state_names:
        cases = cases + STATE_CASES
    return [pytest.param(algorithm, *case[1:], id=f"{algorithm.name}: {case[0]}") for case in cases]


def course_call(algorithm, parameters, grads):
    states = list(algorithm.course_init(fastoptim, parameters))
    hp = dict(algorithm.hyperparameter_sets[0])
    return {"parameters": parameters, "grads": grads, "states": states, "t": 3, "hp": hp}


def run_course(algorithm, call):
    algorithm.course_update(
        fastoptim, call["parameters"], call["grads"], tuple(call["states"]), call["t"], call["hp"]
    )


@pytest.mark.parametrize(
    ("algorithm", "breaks", "error", "message"),
    [case for algorithm in COURSE_ALGORITHMS for case in course_cases(algorithm)],
)
def test_course_dicts(algorithm, breaks, error, message):
    call = course_call(algorithm, *course_model())
    run_course(algorithm, call)  # a good step first: the state is not all zeros
    breaks(call)
    before = arrays_of(call)
    with pytest.raises(error, match=message):
        run_course(algorithm, call)
    assert_bitwise_equal(before, arrays_of(call))


# -- the course drop-ins on FlatParams ----------------------------------------------------
def _other_layout(c):
    other = fastoptim.flatten({"W1": np.zeros((3, 2)), "b1": np.zeros((3, 1))})
    c["grads"] = other.zeros_like(prefix="d")


def _read_only_buffer(c):
    c["parameters"].buffer.flags.writeable = False


FLAT_CASES = [
    (
        "grads of another layout",  # read by key, as the reference: the missing layer named
        _other_layout,
        KeyError,
        r"grads has no 'dW2' for parameters\['W2'\]",
    ),
    ("read-only parameter buffer", _read_only_buffer, ValueError, r"parameters is read-only" + FIX),
    (
        "grads are the parameters",
        lambda c: c.update(grads=c["parameters"]),
        ValueError,
        r"grads shares memory with parameters" + FIX,
    ),
    ("negative lr", lambda c: c["hp"].update(lr=-1.0), ValueError, "Invalid learning rate"),
]
FLAT_STATE_CASES = [
    (
        "state of another layout",
        lambda c: c["states"].__setitem__(
            0, fastoptim.flatten({"W1": np.zeros(6)}).zeros_like(prefix="d")
        ),
        ValueError,
        r"\['dW1'\] has shape \(6,\) but parameters\['W1'\] has shape",
    ),
]


@pytest.mark.parametrize(
    ("algorithm", "breaks", "error", "message"),
    [
        pytest.param(algorithm, *case[1:], id=f"{algorithm.name}: {case[0]}")
        for algorithm in COURSE_ALGORITHMS
        for case in FLAT_CASES + (FLAT_STATE_CASES if algorithm.state_names else [])
    ],
)
def test_course_flatparams(algorithm, breaks, error, message):
    parameters, grads = course_model()
    flat = fastoptim.flatten(parameters)
    flat_grads = flat.zeros_like(prefix="d")
    for key, value in grads.items():
        flat_grads[key] = value
    call = course_call(algorithm, flat, flat_grads)
    run_course(algorithm, call)
    breaks(call)
    before = arrays_of(call)
    with pytest.raises(error, match=message):
        run_course(algorithm, call)
    assert_bitwise_equal(before, arrays_of(call))


# -- the object API -------------------------------------------------------------------------
def _dict_grad(key, value):
    def breaks(c):
        c["grads"] = dict(c["dict_grads"])
        c["grads"][key] = value(c)

    return breaks


OBJECT_CASES = [
    (
        "bias grad (n,) for (n, 1)",
        _dict_grad("db1", lambda c: np.ones(3)),
        ValueError,
        r"grads\['db1'\] has shape \(3,\) but params\['b1'\] has shape \(3, 1\)" + FIX,
    ),
    (
        "transposed weight grad",
        _dict_grad("dW1", lambda c: np.ones((2, 3))),
        ValueError,
        r"grads\['dW1'\] has shape \(2, 3\) but params\['W1'\] has shape \(3, 2\)" + FIX,
    ),
    (
        "missing grad",
        lambda c: c.update(grads={k: v for k, v in c["dict_grads"].items() if k != "db2"}),
        KeyError,
        r"grads is missing the gradient of \['b2'\]" + FIX,
    ),
    (
        "extra key",
        _dict_grad("dW3", lambda c: np.ones(1)),
        KeyError,
        r"grads has keys that are not gradients of any parameter: \['dW3'\]" + FIX,
    ),
    (
        "float32 grad",
        _dict_grad("dW2", lambda c: np.ones((1, 3), np.float32)),
        TypeError,
        r"grads\['dW2'\] is float32 but params\['W2'\] is float64" + FIX,
    ),
    (
        "integer grad",
        _dict_grad("dW1", lambda c: np.ones((3, 2), np.int8)),
        TypeError,
        r"grads\['dW1'\] has dtype int8" + FIX,
    ),
    (
        "complex grad",
        _dict_grad("dW1", lambda c: np.ones((3, 2), np.complex64)),
        TypeError,
        r"grads\['dW1'\] has dtype complex64" + FIX,
    ),
    (
        "grads of another layout",
        lambda c: c.update(grads=fastoptim.flatten({"W1": np.zeros(6)}).zeros_like()),
        ValueError,
        r"grads\['W1'\] has shape \(6,\) but parameters\['W1'\] has shape \(3, 2\)",
    ),
    (
        "flat grads too short",
        lambda c: c.update(grads=np.zeros(c["opt"].layout.size - 1)),
        ValueError,
        r"a flat grads array must have shape \(13,\)",
    ),
    (
        "flat float32 grads",
        lambda c: c.update(grads=np.zeros(13, np.float32)),
        TypeError,
        r"grads is float32 but the parameters are float64" + FIX,
    ),
    (
        "grads are the parameters",
        lambda c: c.update(grads=c["opt"].params),
        ValueError,
        r"grads shares memory with params" + FIX,
    ),
    (
        "flat grads are a state",
        lambda c: c.update(grads=next(iter(c["opt"].state.values())).buffer),
        ValueError,
        r"state\[.*\] shares memory with grads" + FIX,
    ),
    (
        "dict grad aliasing its param",
        _dict_grad("dW1", lambda c: c["opt"].params["W1"]),
        ValueError,
        r"grads\['dW1'\] shares memory with params\['W1'\]" + FIX,
    ),
    (
        "read-only parameter buffer",
        lambda c: setattr(c["opt"].params.buffer.flags, "writeable", False),
        ValueError,
        r"params is read-only" + FIX,
    ),
    (
        "read-only state buffer",
        lambda c: setattr(next(iter(c["opt"].state.values())).buffer.flags, "writeable", False),
        ValueError,
        r"state\[.*\] is read-only" + FIX,
    ),
    (
        "not arrays",
        lambda c: c.update(grads=[1.0, 2.0]),
        TypeError,
        r"grads must be a FlatParams, a dict of arrays or a flat array",
    ),
]


@pytest.mark.parametrize(
    ("algorithm", "breaks", "error", "message"),
    [
        pytest.param(algorithm, *case[1:], id=f"{algorithm.name}: {case[0]}")
        for algorithm in CLASS_ALGORITHMS
        for case in OBJECT_CASES
    ],
)
def test_object_api(algorithm, breaks, error, message):
    parameters, grads = course_model()
    opt = algorithm.make_optimizer(parameters, algorithm.hyperparameter_sets[0])
    opt.step(grads)
    call = {"opt": opt, "dict_grads": grads, "grads": grads}
    breaks(call)
    before = arrays_of({"params": opt.params, "state": opt.state, "grads": call["grads"]})
    t = opt.t
    with pytest.raises(error, match=message):
        opt.step(call["grads"])
    assert opt.t == t
    after = arrays_of({"params": opt.params, "state": opt.state, "grads": call["grads"]})
    assert_bitwise_equal(before, after)


def test_the_number_of_cases():
    """Reported in the issue note; also keeps the tables from silently shrinking."""
    course = sum(len(course_cases(a)) for a in COURSE_ALGORITHMS)
    flat = sum(
        len(FLAT_CASES) + (len(FLAT_STATE_CASES) if a.state_names else 0) for a in COURSE_ALGORITHMS
    )
    objects = len(OBJECT_CASES) * len(CLASS_ALGORITHMS)
    assert course + flat + objects >= 100, (course, flat, objects)
