"""LAMB against optax.lamb's own numbers (tests/data/optax_lamb.npz, written by
tests/peers/optax_lamb.py), against the plain-numpy reference through every gradient
form, across thread counts, with groups, clipping and checkpoints, and fastoptim.torch.LAMB
beside a plain torch LAMB on a model."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pytest

import fastoptim
from fastoptim.reference.lamb import update_parameters_with_lamb

OPTAX = Path(__file__).parent / "data" / "optax_lamb.npz"
OPTAX_OPTIONS = {
    "default": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.0},
    "decayed": {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.1},
}
SHAPES = {"W": (40, 300), "b": (300,), "long": (20000,), "empty": (0,), "zero": (7,)}


def _layers(data, prefix, names):
    return {name: data[f"{prefix}/{name}"] for name in names}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("option", sorted(OPTAX_OPTIONS))
def test_every_step_matches_optax_lamb(dtype, option):
    data = np.load(OPTAX)
    names = ("W", "b", "zero")
    params = {k: v.copy() for k, v in _layers(data, f"{dtype}/start", names).items()}
    opt = fastoptim.LAMB(params, **OPTAX_OPTIONS[option])
    tolerance = 1e-13 if dtype == "float64" else 2e-6
    for t in range(1, 9):
        opt.step(_layers(data, f"{dtype}/grad/{t}", names))
        for name, expected in _layers(data, f"{dtype}/{option}/{t}", names).items():
            np.testing.assert_allclose(opt.params[name], expected, rtol=tolerance, atol=tolerance)
    # the zero layer moved at ratio 1, so optax's numbers test that rule too
    assert np.abs(opt.params["zero"]).max() > 0


def _start(dtype, seed=3):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    params["zero"][:] = 0
    return params


def _grads(dtype, steps, seed=4):
    rng = np.random.default_rng(seed)
    return [{"d" + k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
            for _ in range(steps)]  # fmt: skip


@pytest.mark.parametrize("form", ["dict", "flat array", "FlatParams"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_gradient_form_matches_the_reference(form, dtype):
    hp = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-6, "weight_decay": 0.1, "maximize": True}
    params = _start(dtype)
    expected = copy.deepcopy(params)
    opt = fastoptim.LAMB(params, **hp)
    states = tuple({"d" + k: np.zeros_like(v) for k, v in expected.items()} for _ in range(2))
    for t, grads in enumerate(_grads(dtype, 4), 1):
        given = grads
        if form != "dict":
            flat = opt.flat_gradients(grads)
            given = flat if form == "flat array" else fastoptim.FlatParams(opt.layout, flat)
        opt.step(given)
        update_parameters_with_lamb(expected, grads, states, t, **hp)
        tolerance = 1e-14 if dtype == np.float64 else 1e-6
        for name in SHAPES:
            np.testing.assert_allclose(opt.params[name], expected[name], atol=tolerance)
            np.testing.assert_allclose(
                opt.state["exp_avg_sq"][name], states[1]["d" + name], atol=tolerance
            )


def test_flat_and_dict_steps_and_thread_counts_give_the_same_bits():
    results = []
    for threads, flat in ((1, False), (2, False), (2, True)):
        opt = fastoptim.LAMB(_start(np.float32), lr=0.01, weight_decay=0.01)
        with fastoptim.num_threads(threads):
            for grads in _grads(np.float32, 3):
                opt.step(opt.flat_gradients(grads) if flat else grads)
        results.append(opt.params.buffer.copy())
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_each_layer_moves_by_lr_times_its_own_norm():
    # the trust ratio makes ||p_t - p_{t-1}|| = lr ||p_{t-1}||, whatever the gradients' scale
    params = {"big": np.full(50, 10.0), "small": np.full(50, 0.01)}
    opt = fastoptim.LAMB(params, lr=0.1)
    before = {k: v.copy() for k, v in opt.params.items()}
    rng = np.random.default_rng(0)
    opt.step({"big": rng.standard_normal(50) * 1e3, "small": rng.standard_normal(50) * 1e-3})
    for name, old in before.items():
        moved = np.linalg.norm(opt.params[name] - old)
        assert moved == pytest.approx(0.1 * np.linalg.norm(old), rel=1e-12)


def test_groups_and_clipping_follow_the_reference():
    params = _start(np.float64)
    expected = copy.deepcopy(params)
    groups = [fastoptim.Group(["b"], lr=0.5, weight_decay=0.0)]
    opt = fastoptim.LAMB(params, lr=0.01, weight_decay=0.1, max_grad_norm=1.0, groups=groups)
    states = tuple({"d" + k: np.zeros_like(v) for k, v in expected.items()} for _ in range(2))
    for t, grads in enumerate(_grads(np.float64, 3), 1):
        opt.step(grads)
        norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
        clipped = {k: g * min(1.0, 1.0 / (norm + 1e-6)) for k, g in grads.items()}
        for names, lr, decay in ((["b"], 0.5, 0.0), ([k for k in SHAPES if k != "b"], 0.01, 0.1)):
            part = {k: expected[k] for k in names}
            part_states = tuple({"d" + k: s["d" + k] for k in names} for s in states)
            update_parameters_with_lamb(part, {"d" + k: clipped["d" + k] for k in names},
                                        part_states, t, lr, (0.9, 0.999), 1e-6, decay, False)  # fmt: skip
            expected.update(part)
            for s, ps in zip(states, part_states, strict=True):
                s.update(ps)
    for name in SHAPES:
        np.testing.assert_allclose(opt.params[name], expected[name], atol=1e-13)


def test_a_checkpoint_resumes_bit_identically(tmp_path):
    grads = _grads(np.float32, 4)
    opt = fastoptim.LAMB(_start(np.float32), lr=0.01, weight_decay=0.01)
    for g in grads[:2]:
        opt.step(g)
    fastoptim.save(tmp_path / "lamb.npz", opt)
    resumed = fastoptim.LAMB(_start(np.float32, seed=8), lr=0.01, weight_decay=0.01)
    fastoptim.load(tmp_path / "lamb.npz", resumed)
    again = fastoptim.LAMB(_start(np.float32, seed=9), lr=0.01, weight_decay=0.01)
    again.load_state_dict(opt.state_dict())
    again.params.buffer[:] = opt.params.buffer
    for g in grads[2:]:
        for o in (opt, resumed, again):
            o.step(g)
    np.testing.assert_array_equal(resumed.params.buffer, opt.params.buffer)
    np.testing.assert_array_equal(again.params.buffer, opt.params.buffer)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"lr": -1.0}, "Invalid learning rate"),
        ({"betas": (1.0, 0.9)}, "beta parameter at index 0"),
        ({"eps": 0.0}, "Invalid epsilon value"),
        ({"weight_decay": -0.1}, "Invalid weight_decay"),
        ({"state_dtype": "bfloat16"}, "LAMB takes no state_dtype"),
    ],
)
def test_bad_arguments_are_refused(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fastoptim.LAMB({"w": np.ones(3)}, **bad)


def test_the_torch_class_trains_as_a_plain_torch_lamb_and_resumes_from_torch_save():
    torch = pytest.importorskip("torch")
    import fastoptim.torch

    class PlainLAMB(torch.optim.Optimizer):
        """optax.lamb's update written with torch ops, one parameter at a time."""

        def __init__(self, params, lr, weight_decay, betas=(0.9, 0.999), eps=1e-6):
            super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                      "weight_decay": weight_decay})  # fmt: skip

        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                b1, b2 = group["betas"]
                for p in group["params"]:
                    state = self.state[p]
                    if not state:
                        state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                    state["step"] += 1
                    t = state["step"]
                    state["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                    state["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    u = (state["m"] / (1 - b1**t)) / (
                        (state["v"] / (1 - b2**t)).sqrt() + group["eps"]
                    ) + group["weight_decay"] * p
                    p_norm, u_norm = p.norm(), u.norm()
                    ratio = 1.0 if p_norm == 0 or u_norm == 0 else p_norm / u_norm
                    p.sub_(group["lr"] * ratio * u)

    torch.manual_seed(0)
    for dtype, tolerance in ((torch.float64, 1e-13), (torch.float32, 1e-5)):
        model = torch.nn.Sequential(
            torch.nn.Linear(10, 30), torch.nn.Tanh(), torch.nn.Linear(30, 1)
        ).to(dtype)
        peer = copy.deepcopy(model)
        ours = fastoptim.torch.LAMB(model.parameters(), lr=0.01, weight_decay=0.01)
        theirs = PlainLAMB(peer.parameters(), lr=0.01, weight_decay=0.01)
        x, y = torch.randn(64, 10, dtype=dtype), torch.randn(64, 1, dtype=dtype)

        def train(module, optimizer, x=x, y=y):
            optimizer.zero_grad()
            ((module(x) - y) ** 2).mean().backward()
            optimizer.step()

        for _ in range(10):
            train(model, ours)
            train(peer, theirs)
            for a, b in zip(model.parameters(), peer.parameters(), strict=True):
                torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance)
        saved = io.BytesIO()
        torch.save(ours.state_dict(), saved)
        saved.seek(0)
        copied = copy.deepcopy(model)
        resumed = fastoptim.torch.LAMB(copied.parameters(), lr=0.01, weight_decay=0.01)
        resumed.load_state_dict(torch.load(saved, weights_only=True))
        assert resumed.state_dict()["state"][0]["step"] == 10
        train(model, ours)
        train(copied, resumed)
        for a, b in zip(model.parameters(), copied.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
