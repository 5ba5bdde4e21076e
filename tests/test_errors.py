"""Bad input gets a clear error naming the argument, and changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

import fastoptim


def make_course(dtype=np.float64):
    rng = np.random.default_rng(0)
    parameters = {
        "W1": rng.standard_normal((3, 2)).astype(dtype),
        "b1": rng.standard_normal((3, 1)).astype(dtype),
    }
    grads = {"d" + k: rng.standard_normal(v.shape).astype(dtype) for k, v in parameters.items()}
    return parameters, grads


def snapshot(*dicts):
    return [{k: np.array(v, copy=True) for k, v in d.items()} for d in dicts]


def assert_unchanged(before, *dicts):
    for saved, current in zip(before, dicts, strict=True):
        for key in saved:
            np.testing.assert_array_equal(current[key], saved[key])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, r"Invalid learning rate: -1.0 \(lr must be"),
        ({"lr": float("nan")}, "Invalid learning rate: nan"),
        ({"lr": float("inf")}, "Invalid learning rate: inf"),
        (
            {"betas": (1.0, 0.999)},
            r"Invalid beta parameter at index 0: 1.0 \(betas\[0\] must be in \[0, 1\)\)",
        ),
        ({"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1"),
        ({"betas": (0.9,)}, "Invalid betas"),
        ({"eps": 0.0}, r"Invalid epsilon value: 0.0 \(eps must be a finite number > 0\)"),
        ({"eps": float("nan")}, "Invalid epsilon value: nan"),
        ({"weight_decay": -0.1}, r"Invalid weight_decay value: -0.1 \(weight_decay must be"),
        ({"weight_decay": float("nan")}, "Invalid weight_decay value: nan"),
        ({"amsgrad": 1}, "amsgrad must be True or False"),
        ({"maximize": "yes"}, "maximize must be True or False"),
    ],
)
def test_adam_hyperparameters(kwargs, message):
    parameters, _ = make_course()
    with pytest.raises((ValueError, TypeError), match=message):
        fastoptim.Adam(parameters, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -0.1}, "Invalid learning rate"),
        ({"beta": 1.0}, r"Invalid beta value: 1.0 \(beta must be in \[0, 1\)\)"),
    ],
)
def test_momentum_hyperparameters(kwargs, message):
    parameters, _ = make_course()
    with pytest.raises(ValueError, match=message):
        fastoptim.Momentum(parameters, **kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"t": 0}, r"Invalid step: 0 \(t must be a whole number >= 1"),
        ({"t": 1.5}, "Invalid step: 1.5"),
        ({"learning_rate": -0.01}, r"learning_rate must be"),
        ({"beta1": 1.0}, r"beta1 must be in \[0, 1\)"),
        ({"epsilon": -1e-8}, "epsilon must be"),
    ],
)
def test_course_adam_rejects_bad_arguments_and_changes_nothing(args, message):
    parameters, grads = make_course()
    v, s = fastoptim.initialize_adam(parameters)
    call = {"t": 1, **args}
    before = snapshot(parameters, grads, v, s)
    with pytest.raises(ValueError, match=message):
        fastoptim.update_parameters_with_adam(parameters, grads, v, s, **call)
    assert_unchanged(before, parameters, grads, v, s)


def test_a_bad_last_layer_changes_no_earlier_layer():
    """Everything is checked before the first write: no partial updates."""
    parameters, grads = make_course()
    grads["db1"] = grads["db1"].reshape(3)  # (3,) for a (3, 1) bias: numpy would broadcast
    v = fastoptim.initialize_velocity(parameters)
    before = snapshot(parameters, grads, v)
    with pytest.raises(
        ValueError,
        match=r"grads\['db1'\] has shape \(3,\) but parameters\['b1'\] has shape \(3, 1\)",
    ):
        fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.01)
    assert_unchanged(before, parameters, grads, v)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128, object])
def test_unsupported_dtypes_say_which_work(dtype):
    parameters = {"W1": np.ones((2, 2), dtype=dtype)}
    grads = {"dW1": np.ones((2, 2), dtype=dtype)}
    v = {"dW1": np.zeros((2, 2), dtype=dtype)}
    with pytest.raises(TypeError, match=r"float32 or float64 only.*astype\(np.float32\)"):
        fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.01)


def test_mismatched_dtypes_name_both_sides():
    parameters, grads = make_course(np.float32)
    grads["dW1"] = grads["dW1"].astype(np.float64)
    v = fastoptim.initialize_velocity(parameters)
    with pytest.raises(
        TypeError, match=r"grads\['dW1'\] is float64 but parameters\['W1'\] is float32"
    ):
        fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.01)


def test_missing_gradient_is_named():
    parameters, grads = make_course()
    del grads["db1"]
    v = fastoptim.initialize_velocity(parameters)
    with pytest.raises(KeyError, match=r"grads has no 'db1' for parameters\['b1'\]"):
        fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.01)


def test_read_only_parameters_are_refused():
    parameters, grads = make_course()
    parameters["b1"].flags.writeable = False
    v = fastoptim.initialize_velocity(parameters)
    before = snapshot(parameters, v)
    with pytest.raises(ValueError, match=r"parameters\['b1'\] is read-only"):
        fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.01)
    assert_unchanged(before, parameters, v)


def test_read_only_and_strided_gradients_work_as_in_the_reference():
    parameters, grads = make_course()
    expected, _ = fastoptim.reference.update_parameters_with_momentum(
        dict(parameters), grads, fastoptim.reference.initialize_velocity(parameters), 0.9, 0.1
    )
    grads["dW1"] = np.asfortranarray(grads["dW1"])
    grads["db1"].flags.writeable = False
    v = fastoptim.initialize_velocity(parameters)
    fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.1)
    for key in expected:
        np.testing.assert_array_equal(parameters[key], expected[key])


def test_object_api_step_rejects_bad_grads_and_changes_nothing():
    parameters, grads = make_course()
    opt = fastoptim.Adam(parameters)
    flat_before = opt.params.buffer.copy()
    bad_inputs = [
        ({"dW1": grads["dW1"]}, KeyError, r"missing the gradient of \['b1'\]"),
        ({**grads, "dW2": grads["dW1"]}, KeyError, r"not gradients of any parameter: \['dW2'\]"),
        (
            {"dW1": grads["dW1"].T, "db1": grads["db1"]},
            ValueError,
            r"grads\['dW1'\] has shape \(2, 3\)",
        ),
        (np.zeros(8), ValueError, r"shape \(9,\)"),
        (np.zeros(9, dtype=np.float32), TypeError, "float32 but the parameters are float64"),
        (
            fastoptim.flatten({"W1": np.zeros((3, 2))}),
            ValueError,
            r"grads has 1 layers, the parameters 2: it lacks 'b1' \(layer 1\)",
        ),
        (
            fastoptim.flatten({"db1": grads["db1"], "dW1": grads["dW1"]}),
            ValueError,
            r"layer 0 of grads is 'db1' \(3, 1\) where the parameters have 'W1' \(3, 2\) "
            r"\('b1' is the parameters' layer 1: the order differs\)",
        ),
        ([1.0, 2.0], TypeError, "grads must be a FlatParams, a dict of arrays or a flat array"),
    ]
    for grads_value, error, message in bad_inputs:
        with pytest.raises(error, match=message):
            opt.step(grads_value)
    np.testing.assert_array_equal(opt.params.buffer, flat_before)
    assert opt.t == 0
    assert not opt.state["exp_avg"].buffer.any()


def test_course_flatparams_of_another_layout_are_read_by_key_and_refused_per_layer():
    """A FlatParams that does not line up with the parameters is read by key, as the
    reference reads a dict, so what differs is named layer by layer."""
    parameters, _ = make_course()
    flat = fastoptim.flatten(parameters)
    other = fastoptim.flatten({"W1": np.zeros((2, 3)), "b1": np.zeros((3, 1))}).zeros_like(
        prefix="d"
    )
    v, s = fastoptim.initialize_adam(flat)
    with pytest.raises(ValueError, match=r"grads\['dW1'\] has shape \(2, 3\) but .* \(3, 2\)"):
        fastoptim.update_parameters_with_adam(flat, other, v, s, 1)


def unaligned_copy(array):
    """A C-contiguous copy of ``array`` that starts one byte off its dtype's alignment."""
    raw = np.zeros(array.nbytes + 1, dtype=np.uint8)
    shifted = raw[1:].view(array.dtype).reshape(array.shape)
    shifted[...] = array
    assert not shifted.flags.aligned
    return shifted


def test_unaligned_gradients_and_memmap_parameters_work_as_in_the_reference(tmp_path):
    parameters, grads = make_course()
    expected, _ = fastoptim.reference.update_parameters_with_momentum(
        dict(parameters), grads, fastoptim.reference.initialize_velocity(parameters), 0.9, 0.1
    )
    mapped = np.lib.format.open_memmap(
        tmp_path / "W1.npy", mode="w+", dtype=np.float64, shape=parameters["W1"].shape
    )
    mapped[...] = parameters["W1"]
    parameters["W1"] = mapped
    grads = {key: unaligned_copy(grad) for key, grad in grads.items()}
    v = fastoptim.initialize_velocity(parameters)
    fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.1)
    for key in expected:
        np.testing.assert_array_equal(parameters[key], expected[key])
    assert parameters["W1"] is mapped  # updated in place, through the memory map


def test_strided_and_unaligned_parameters_and_state_are_rebound_as_the_reference_does():
    parameters, grads = make_course()
    expected, expected_v = fastoptim.reference.update_parameters_with_momentum(
        dict(parameters), grads, fastoptim.reference.initialize_velocity(parameters), 0.9, 0.1
    )
    parameters["b1"] = unaligned_copy(parameters["b1"])
    parameters["W1"] = np.asfortranarray(parameters["W1"])
    v = fastoptim.initialize_velocity(parameters)
    v["dW1"] = np.asfortranarray(v["dW1"])
    old_b1, old_v = parameters["b1"], v["dW1"]
    fastoptim.update_parameters_with_momentum(parameters, grads, v, 0.9, 0.1)
    for key in expected:
        np.testing.assert_array_equal(parameters[key], expected[key])
        np.testing.assert_array_equal(v["d" + key], expected_v["d" + key])
    assert parameters["b1"] is not old_b1 and parameters["b1"].flags.aligned
    assert v["dW1"] is not old_v and v["dW1"].flags.c_contiguous


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: fastoptim.SGD(p, momentum=-0.9), r"Invalid momentum value: -0.9"),
        (lambda p: fastoptim.SGD(p, weight_decay=-1.0), r"Invalid weight_decay value: -1.0"),
        (lambda p: fastoptim.SGD(p, nesterov=True), "Nesterov momentum requires a momentum"),
        (
            lambda p: fastoptim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True),
            "Nesterov momentum requires a momentum and zero dampening",
        ),
        (lambda p: fastoptim.AdamW(p, weight_decay=-0.01), "Invalid weight_decay value"),
        (lambda p: fastoptim.Adagrad(p, lr_decay=-1.0), "Invalid lr_decay value"),
        (
            lambda p: fastoptim.Adagrad(p, initial_accumulator_value=-0.1),
            "Invalid initial_accumulator_value value",
        ),
        (lambda p: fastoptim.Adagrad(p, eps=0.0), "Invalid epsilon value"),
    ],
)
def test_torch_form_hyperparameters(make, message):
    parameters, _ = make_course()
    before = snapshot(parameters)
    with pytest.raises(ValueError, match=message):
        make(parameters)
    assert_unchanged(before, parameters)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1"])
def test_setting_lr_between_steps_is_checked(bad):
    parameters, grads = make_course()
    opt = fastoptim.SGD(parameters, lr=0.1, momentum=0.9)
    opt.step(grads)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        opt.lr = bad
    assert opt.lr == 0.1
    for lr in (0.05, 0.01, 0.0):  # a schedule: no recompilation, the new rate is used
        opt.lr = lr
        opt.step(grads)
    assert len(fastoptim.kernels.sgd_update.variant(np.dtype(np.float64), False).signatures) == 1


def test_an_argument_an_algorithm_lacks_names_what_it_takes():
    """A new user passes Adam's weight_decay to Rprop (torch's Rprop has none either)."""
    params = {"w": np.ones(2)}
    with pytest.raises(TypeError, match=r"Rprop: .*'weight_decay'; it takes lr, etas, step_sizes"):
        fastoptim.Rprop(params, weight_decay=0.1)
    assert isinstance(params["w"], np.ndarray) and params["w"].base is None  # not flattened
