"""The weight EMA fused into the step (``ema_decay``): after every step of every elementwise
algorithm, and with every state storage, ``opt.ema`` is torch.optim.swa_utils' EMA of the
parameters (the first step copies them, then ``lerp(ema, p, 1 - decay)``), the parameters
are those of the same optimizer without it, and the average survives checkpoints."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
from registry import ALGORITHMS, random_grads, random_parameters

import fastoptim
from fastoptim.reference.schedule_free import lerp

SHAPES = {"W1": (30, 20), "b1": (30, 1), "W2": (5, 30), "b2": (5, 1)}
ELEMENTWISE = [
    a for a in ALGORITHMS if a.optimizer_class is not None and a.make_optimizer is not None
]


def _ema_of(trajectory, decay):
    """swa_utils' EMA of a list of parameter snapshots: a copy, then lerp(ema, p, 1 - decay)."""
    ema = trajectory[0].copy()
    for params in trajectory[1:]:
        ema = lerp(ema, params, 1 - decay)
    return ema


def _steps(algorithm, hp, dtype, steps, **options):
    """``steps`` steps of the registry's optimizer with ``hp`` (and ``options``), and the
    parameters after each."""
    params = {k: v.astype(dtype) for k, v in random_parameters(SHAPES, seed=1).items()}
    opt = algorithm.make_optimizer(params, hp)
    if options:  # the same settings, and these options
        opt = type(opt)(params, **{**opt.hyperparameters(), **options})
    rng = np.random.default_rng(2)
    trajectory = []
    for _ in range(steps):
        grads = {k: v.astype(dtype) for k, v in random_grads(SHAPES, rng).items()}
        opt.step(grads)
        trajectory.append(opt.params.buffer.copy())
    return opt, trajectory


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ELEMENTWISE, ids=lambda a: a.name)
def test_the_average_is_swa_utils_ema_of_the_same_steps(algorithm, dtype):
    hp = algorithm.hyperparameter_sets[-1]
    plain, trajectory = _steps(algorithm, hp, dtype, 6)
    averaged, _ = _steps(algorithm, hp, dtype, 6, ema_decay=0.9)
    np.testing.assert_array_equal(averaged.params.buffer, plain.params.buffer)
    np.testing.assert_array_equal(averaged.ema.buffer, _ema_of(trajectory, 0.9))


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("form", ["flat", "dict"])
def test_every_state_storage_and_gradient_form_moves_the_average_in_its_pass(state_dtype, form):
    shapes = {"W": (80, 100), "b": (100,)}  # W is quantized under int8, b is not
    rng = np.random.default_rng(3)
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    opt = fastoptim.Adam(params, lr=0.01, state_dtype=state_dtype, ema_decay=0.99)
    trajectory = []
    for _ in range(5):
        grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        opt.step(opt.flat_gradients(grads) if form == "flat" else grads)
        trajectory.append(opt.params.buffer.copy())
    np.testing.assert_array_equal(opt.ema.buffer, _ema_of(trajectory, 0.99))


def test_the_average_matches_swa_utils_averaged_model_on_torch():
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 1))
    model = model.double()
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.95))
    theirs = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    params = {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
    ours = fastoptim.AdamW(params, lr=0.01, weight_decay=0.01, ema_decay=0.95)
    for _ in range(8):
        x, y = torch.randn(16, 6, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
        theirs.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
        theirs.step()
        averaged.update_parameters(model)
        ours.step(grads)
    for (name, _), mean in zip(model.named_parameters(), averaged.module.parameters(),
                               strict=True):  # fmt: skip
        # torch's vectorised lerp fuses its multiply-add: within a few roundings
        np.testing.assert_allclose(ours.ema[name], mean.detach().numpy(), rtol=1e-13, atol=1e-15)


def test_ema_weights_swaps_in_place_and_back_and_refuses_a_step_inside():
    params = random_parameters(SHAPES, seed=4)
    opt = fastoptim.AdamW(params, lr=0.05, ema_decay=0.5)
    rng = np.random.default_rng(5)
    for _ in range(3):
        opt.step(random_grads(SHAPES, rng))
    weights, average = opt.params.buffer.copy(), opt.ema.buffer.copy()
    view = params["W1"]  # the caller's dict keeps showing the live buffer
    with opt.ema_weights():
        np.testing.assert_array_equal(opt.params.buffer, average)
        np.testing.assert_array_equal(view, average[: view.size].reshape(view.shape))
        with pytest.raises(RuntimeError, match=r"inside opt\.ema_weights"):
            opt.step(random_grads(SHAPES, rng))
        with pytest.raises(RuntimeError, match="nested"):
            opt.ema_weights().__enter__()
    np.testing.assert_array_equal(opt.params.buffer, weights)
    np.testing.assert_array_equal(opt.ema.buffer, average)
    with pytest.raises(ZeroDivisionError), opt.ema_weights():  # an error inside: swapped back
        _ = 1 / 0
    np.testing.assert_array_equal(opt.params.buffer, weights)
    assert opt.t == 3


def test_a_checkpoint_and_a_state_dict_keep_the_average(tmp_path):
    grads = [random_grads(SHAPES, np.random.default_rng(s)) for s in range(5)]
    opt = fastoptim.Adam(random_parameters(SHAPES, seed=6), lr=0.01, ema_decay=0.9)
    for g in grads[:2]:
        opt.step(g)
    fastoptim.save(tmp_path / "ema.npz", opt)
    resumed = fastoptim.Adam(random_parameters(SHAPES, seed=7), lr=0.01, ema_decay=0.9)
    fastoptim.load(tmp_path / "ema.npz", resumed)
    again = fastoptim.Adam(random_parameters(SHAPES, seed=8), lr=0.01, ema_decay=0.9)
    again.load_state_dict(copy.deepcopy(opt.state_dict()))
    again.params.buffer[:] = opt.params.buffer
    copied = copy.deepcopy(opt)
    for g in grads[2:]:
        for o in (opt, resumed, again, copied):
            o.step(g)
    for o in (resumed, again, copied):
        np.testing.assert_array_equal(o.ema.buffer, opt.ema.buffer)
        np.testing.assert_array_equal(o.params.buffer, opt.params.buffer)


def test_a_state_dict_without_the_average_is_refused_and_changes_nothing():
    opt = fastoptim.Adam(random_parameters(SHAPES, seed=9), lr=0.01, ema_decay=0.9)
    opt.step(random_grads(SHAPES, np.random.default_rng(1)))
    saved = opt.state_dict()
    del saved["ema"]["W2"]
    other = fastoptim.Adam(random_parameters(SHAPES, seed=10), lr=0.01, ema_decay=0.9)
    before = other.ema.buffer.copy()
    with pytest.raises(KeyError, match=r"state_dict\['ema'\] must hold the weight EMA"):
        other.load_state_dict(saved)
    np.testing.assert_array_equal(other.ema.buffer, before)
    assert other.t == 0


def test_the_decay_may_change_but_not_whether_there_is_an_average():
    opt = fastoptim.SGD(random_parameters(SHAPES, seed=11), lr=0.1, ema_decay=0.9)
    opt.ema_decay = 0.99
    assert opt.hyperparameters()["ema_decay"] == 0.99
    with pytest.raises(ValueError, match="ema_decay decides whether the weight EMA"):
        opt.ema_decay = None
    plain = fastoptim.SGD(random_parameters(SHAPES, seed=11), lr=0.1)
    with pytest.raises(ValueError, match="ema_decay decides"):
        plain.set_hyperparameters(ema_decay=0.9)
    with pytest.raises(ValueError, match="keeps no weight EMA; construct it with ema_decay"):
        plain.ema_weights().__enter__()


def test_frozen_layers_keep_their_weights_as_their_average():
    params = random_parameters(SHAPES, seed=12)
    frozen = params["W2"].copy()
    opt = fastoptim.Adam(
        params, lr=0.1, ema_decay=0.5, groups=[fastoptim.Group(["W2"], frozen=True)]
    )
    grads = random_grads(SHAPES, np.random.default_rng(13))
    del grads["dW2"]
    for _ in range(3):
        opt.step(grads)
    np.testing.assert_array_equal(opt.ema["W2"], frozen)
    assert not np.array_equal(opt.ema["W1"], opt.params["W1"])


def test_thread_counts_give_the_same_bits():
    results = []
    rng = np.random.default_rng(14)
    shapes = {"big": (300_000,)}
    start = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = {"dbig": rng.standard_normal(300_000).astype(np.float32)}
    for threads in (1, 2):
        opt = fastoptim.Adam(copy.deepcopy(start), lr=0.01, ema_decay=0.999)
        with fastoptim.num_threads(threads):
            for _ in range(3):
                opt.step(grads)
        results.append(opt.ema.buffer.copy())
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("name", ["Adafactor", "LAMB"])
def test_the_algorithms_of_several_passes_move_it_in_a_pass_of_its_own(name):
    cls = getattr(fastoptim, name)
    rng = np.random.default_rng(15)
    shapes = {"W": (40, 30), "b": (30,)}
    start = {k: rng.standard_normal(s) for k, s in shapes.items()}
    plain = cls(copy.deepcopy(start), lr=0.01)
    averaged = cls(copy.deepcopy(start), lr=0.01, ema_decay=0.9)
    trajectory = []
    for _ in range(4):
        grads = {k: rng.standard_normal(s) for k, s in shapes.items()}
        plain.step(grads)
        averaged.step(grads)
        trajectory.append(plain.params.buffer.copy())
    np.testing.assert_array_equal(averaged.params.buffer, plain.params.buffer)
    np.testing.assert_array_equal(averaged.ema.buffer, _ema_of(trajectory, 0.9))


# -- fastoptim.torch -----------------------------------------------------------------------------
def _torch_pair(dtype_name="float64"):
    torch = pytest.importorskip("torch")
    import fastoptim.torch

    torch.manual_seed(0)
    dtype = getattr(torch, dtype_name)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    model = model.to(dtype)
    return torch, fastoptim.torch, model, copy.deepcopy(model)


def _train(torch, module, optimizer, steps, seed=0):
    generator = torch.Generator().manual_seed(seed)
    dtype = next(module.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(8, 4, generator=generator, dtype=dtype)
        y = torch.randn(8, 2, generator=generator, dtype=dtype)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(module(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
def test_the_torch_class_keeps_averaged_models_ema(dtype_name):
    torch, fastoptim_torch, model, twin = _torch_pair(dtype_name)
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    theirs = torch.optim.AdamW(model.parameters(), lr=0.01)
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    ours = fastoptim_torch.AdamW(twin.parameters(), lr=0.01, ema_decay=0.9)
    tolerance = 1e-14 if dtype_name == "float64" else 1e-6
    generator = torch.Generator().manual_seed(1)
    for t in range(6):
        x = torch.randn(8, 4, generator=generator, dtype=model[0].weight.dtype)
        for module, optimizer in ((model, theirs), (twin, ours)):
            optimizer.zero_grad()
            module(x).square().mean().backward()
            if t == 2:  # a parameter without a gradient: its own step count, its average too
                module[2].bias.grad = None
            optimizer.step()
        averaged.update_parameters(model)
    for mine, mean in zip(ours.ema, averaged.module.parameters(), strict=True):
        torch.testing.assert_close(mine, mean.detach(), atol=tolerance, rtol=tolerance)
    weights = [p.detach().clone() for p in twin.parameters()]
    with ours.ema_weights():  # the model itself holds the average inside the block
        for p, mean in zip(twin.parameters(), averaged.module.parameters(), strict=True):
            torch.testing.assert_close(p.detach(), mean.detach(), atol=tolerance, rtol=tolerance)
        with pytest.raises(RuntimeError, match=r"inside optimizer\.ema_weights"):
            ours.step()
    for p, weight in zip(twin.parameters(), weights, strict=True):
        torch.testing.assert_close(p.detach(), weight, atol=0, rtol=0)


def test_the_torch_average_travels_in_state_dicts_both_ways():
    torch, fastoptim_torch, model, twin = _torch_pair()
    ours = fastoptim_torch.AdamW(model.parameters(), lr=0.01, ema_decay=0.8)
    _train(torch, model, ours, 4)
    saved = io.BytesIO()
    torch.save(ours.state_dict(), saved)
    saved.seek(0)
    loaded = torch.load(saved, weights_only=True)
    assert all("ema" in state for state in loaded["state"].values())
    copied = copy.deepcopy(model)
    resumed = fastoptim_torch.AdamW(copied.parameters(), lr=0.01, ema_decay=0.8)
    resumed.load_state_dict(loaded)
    duplicate_model, duplicate = copy.deepcopy((model, ours))
    for module, optimizer in ((model, ours), (copied, resumed), (duplicate_model, duplicate)):
        _train(torch, module, optimizer, 3, seed=5)
    for other in (resumed, duplicate):
        for a, b in zip(other.ema, ours.ema, strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
    # torch.optim reads the state and ignores the average; its state starts ours at the weights
    torch.optim.AdamW(copy.deepcopy(model).parameters(), lr=0.01).load_state_dict(loaded)
    plain = torch.optim.AdamW(twin.parameters(), lr=0.01)
    _train(torch, twin, plain, 2)
    adopted = fastoptim_torch.AdamW(copy.deepcopy(twin).parameters(), lr=0.01, ema_decay=0.8)
    adopted.load_state_dict(plain.state_dict())
    for average, weight in zip(adopted.ema, twin.parameters(), strict=True):
        torch.testing.assert_close(average, weight.detach(), atol=0, rtol=0)
    assert fastoptim_torch.AdamW(twin.parameters(), lr=0.01).ema is None
