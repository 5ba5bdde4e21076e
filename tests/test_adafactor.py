"""fastoptim.Adafactor: against torch.optim.Adafactor itself (its for-loop form) and the
plain-numpy reference of it, with every shape torch treats its own way (0-d, 1-D, a matrix,
a batch of matrices, a convolution's 4-D weight, a 1-wide matrix); the same bits for any
thread count; the factored state through state_dict; bad input refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import fastoptim
from fastoptim.reference import torch_adafactor

SHAPES = {
    "W1": (37, 53),
    "b1": (37,),
    "conv": (6, 4, 3, 3),
    "batch": (3, 70, 130),  # units of 64 rows: 2 per matrix
    "column": (50, 1),
    "scale": (),
    "clamped": (21, 300),  # its gradient's first row and column tiny: the clamp binds
    "clamped_vector": (40,),
    "wide": (9, 600),  # rows in fours and one more; chunks of 256 columns and a short one
    "long": (20_000,),  # three blocks of the full second moment's sums
}
STEPS = 8
OPTIONS = [
    {},
    {"lr": 0.05, "weight_decay": 0.1, "maximize": True},
    {"beta2_decay": -1.0, "eps": (1e-20, 1e-3), "d": 1.5},
    {"lr": 1e-3, "eps": (None, 0.0), "max_grad_norm": 1.0},
]
DEFAULTS = {"lr": 1e-2, "beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0,
            "weight_decay": 0.0, "maximize": False}  # fmt: skip


def _parameters(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}


def _grads(dtype, steps, seed=1):
    rng = np.random.default_rng(seed)
    steps_grads = []
    for _ in range(steps):
        grads = {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}
        # so small that their second moments fall below eps1**2 in either dtype
        grads["clamped"][0, :] *= 1e-20
        grads["clamped"][:, 0] *= 1e-20
        grads["clamped_vector"][:7] *= 1e-20
        steps_grads.append(grads)
    return steps_grads


def _state(opt, name):
    """The layer's torch-format state: the factors or the variance."""
    keys = ("row_var", "col_var") if len(SHAPES[name]) >= 2 else ("variance",)
    return {key: opt.state_values(key)[name] for key in keys}


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_trains_as_torchs_adafactor(options, dtype):
    torch = pytest.importorskip("torch")
    params = _parameters(dtype)
    tensors = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    torch_options = {k: v for k, v in options.items() if k != "max_grad_norm"}
    theirs = torch.optim.Adafactor(list(tensors.values()), **torch_options, foreach=False)
    ours = fastoptim.Adafactor(params, **options)
    for grads in _grads(dtype, STEPS):
        for name, tensor in tensors.items():
            tensor.grad = torch.tensor(grads[name])
        if "max_grad_norm" in options:
            torch.nn.utils.clip_grad_norm_(list(tensors.values()), options["max_grad_norm"])
        theirs.step()
        ours.step(grads)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for name, tensor in tensors.items():
        np.testing.assert_allclose(ours.params[name], tensor.detach().numpy(), rtol=rtol,
                                   atol=rtol, err_msg=name)  # fmt: skip
        for key, value in _state(ours, name).items():
            np.testing.assert_allclose(value, theirs.state[tensor][key].numpy(), rtol=rtol,
                                       atol=rtol * 1e-3, err_msg=f"{name} {key}")  # fmt: skip


@pytest.mark.parametrize("options", OPTIONS[:3], ids=str)
def test_matches_the_numpy_reference(options):
    params = _parameters(np.float64)
    reference = copy.deepcopy(params)
    states = torch_adafactor.initialize_adafactor(reference)
    ours = fastoptim.Adafactor(params, **options)
    for t, grads in enumerate(_grads(np.float64, STEPS), start=1):
        ours.step(grads)
        course = {"d" + name: g for name, g in grads.items()}
        torch_adafactor.update_parameters_with_torch_adafactor(
            reference, course, states, t, **{**DEFAULTS, **options}
        )
    for name in SHAPES:
        np.testing.assert_allclose(ours.params[name], reference[name], rtol=1e-12, atol=1e-14)


def test_the_same_bits_for_one_and_two_threads():
    results = []
    for threads in (1, 2):
        with fastoptim.num_threads(threads):
            params = _parameters(np.float32)
            # a layer large enough for the parallel kernels
            params["big"] = np.random.default_rng(3).standard_normal((300, 400), np.float32)
            opt = fastoptim.Adafactor(params, lr=0.05)
            rng = np.random.default_rng(4)
            for _ in range(3):
                opt.step({k: rng.standard_normal(v.shape).astype(np.float32)
                          for k, v in params.items()})  # fmt: skip
            results.append({k: np.array(v) for k, v in opt.params.items()})
    for name in results[0]:
        assert np.array_equal(results[0][name], results[1][name]), name


def test_the_state_is_factored_and_round_trips_through_state_dict():
    params = _parameters(np.float32)
    opt = fastoptim.Adafactor(params)
    grads = _grads(np.float32, 4)
    for g in grads[:2]:
        opt.step(g)
    # rows plus columns for the matrices, the size for the rest
    factored = sum(s[-2] * (1 if len(s) == 2 else np.prod(s[:-2])) for s in SHAPES.values()
                   if len(s) >= 2)  # fmt: skip
    assert opt.state["row_var"].layout.size == factored
    columns = sum(s[-1] * (1 if len(s) == 2 else np.prod(s[:-2])) for s in SHAPES.values()
                  if len(s) >= 2)  # fmt: skip
    full = sum(int(np.prod(s)) for s in SHAPES.values() if len(s) < 2)
    assert opt.state_nbytes == 4 * (factored + columns + full)
    saved = opt.state_dict()
    twin = fastoptim.Adafactor(copy.deepcopy({k: np.array(v) for k, v in opt.params.items()}))
    twin.load_state_dict(saved)
    for g in grads[2:]:
        opt.step(g)
        twin.step(g)
    for name in SHAPES:
        assert np.array_equal(opt.params[name], twin.params[name])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"beta2_decay": 0.8}, "beta2_decay should be <= 0"),
        ({"eps": (-1e-30, 1e-3)}, "epsilon1 should be >= 0"),
        ({"eps": (None, -1.0)}, "epsilon2 should be >= 0"),
        ({"eps": 1e-3}, "expected \\(eps1, eps2\\)"),
        ({"d": 0.5}, "Clipping threshold d should be >= 1"),
        ({"weight_decay": -0.1}, "Invalid weight_decay"),
    ],
)
def test_bad_hyperparameters_are_refused(options, match):
    params = _parameters(np.float64)
    with pytest.raises(ValueError, match=match):
        fastoptim.Adafactor(params, **options)


def test_a_state_dtype_is_refused():
    with pytest.raises(TypeError, match="Adafactor takes no state_dtype"):
        fastoptim.Adafactor(_parameters(np.float32), state_dtype="bfloat16")


def test_a_deepcopy_steps_its_own_state():
    opt = fastoptim.Adafactor(_parameters(np.float32))
    grads = _grads(np.float32, 3)
    opt.step(grads[0])  # the layers' views are made
    twin = copy.deepcopy(opt)
    twin.step(grads[1])
    assert not np.array_equal(twin.state_values("row_var")["W1"], opt.state_values("row_var")["W1"])
    opt.step(grads[1])
    for key in ("row_var", "col_var", "variance"):
        for name, value in opt.state_values(key).items():
            assert np.array_equal(value, twin.state_values(key)[name]), (key, name)


def test_a_checkpoint_file_round_trips(tmp_path):
    """fastoptim.save/load hold the factored state as it is (not laid out like the
    parameters), and training goes on with the same bits."""
    opt = fastoptim.Adafactor(_parameters(np.float32), lr=0.05, groups=[
        fastoptim.Group(["b1", "conv"], lr=0.01)])  # fmt: skip
    grads = _grads(np.float32, 4)
    for g in grads[:2]:
        opt.step(g)
    fastoptim.save(tmp_path / "adafactor.npz", opt)
    twin = fastoptim.Adafactor(_parameters(np.float32, seed=5), lr=0.05, groups=[
        fastoptim.Group(["b1", "conv"], lr=0.01)])  # fmt: skip
    fastoptim.load(tmp_path / "adafactor.npz", twin)
    for g in grads[2:]:
        opt.step(g)
        twin.step(g)
    for name in SHAPES:
        assert np.array_equal(opt.params[name], twin.params[name]), name
