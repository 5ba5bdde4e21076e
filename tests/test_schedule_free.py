"""Schedule-Free AdamW against the plain-numpy reference (every gradient form, groups,
clipping), against its own theory (x is the weighted average of the z's), across thread
counts and checkpoints, and against the schedulefree package itself: the numpy class and
fastoptim.torch.AdamWScheduleFree beside schedulefree.AdamWScheduleFree after every step,
in both modes, both state_dict directions, with an LR scheduler and GradScaler."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest

import fastoptim
from fastoptim.reference import schedule_free as reference

SHAPES = {"W1": (6, 4), "b1": (6,), "W2": (3, 6), "b2": (3,)}
DEFAULTS = {
    "lr": 0.0025,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "warmup_steps": 0,
    "r": 0.0,
    "weight_lr_power": 2.0,
    "maximize": False,
}
OPTIONS = {
    "default": {},
    "warmup, decay, r": {
        "lr": 0.05,
        "betas": (0.8, 0.99),
        "weight_decay": 0.1,
        "warmup_steps": 4,
        "r": 0.5,
        "weight_lr_power": 1.0,
    },
    "maximize": {"lr": 0.01, "eps": 1e-6, "maximize": True, "weight_lr_power": 0.0},
}


def _start(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def _grads(dtype, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [{"d" + k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
            for _ in range(steps)]  # fmt: skip


class Reference:
    """The plain-numpy reference over a dict of parameters, with its state."""

    def __init__(self, params, **hp):
        self.params, self.hp = copy.deepcopy(params), {**DEFAULTS, **hp}
        self.z, self.exp_avg_sq, self.sums = reference.initialize_schedule_free()

    def step(self, grads):
        reference.update_parameters_with_adamw_schedule_free(
            self.params, grads, self.z, self.exp_avg_sq, self.sums, **self.hp
        )

    def eval(self):
        reference.to_eval(self.params, self.z, self.hp["betas"][0])

    def train(self):
        reference.to_train(self.params, self.z, self.hp["betas"][0])


@pytest.mark.parametrize("form", ["dict", "flat array", "FlatParams"])
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_step_and_mode_equals_the_reference(form, option, dtype):
    # the same operations in the same order: the same bits, in y and x
    params = _start(dtype)
    expected = Reference(params, **OPTIONS[option])
    opt = fastoptim.AdamWScheduleFree(params, **OPTIONS[option])
    for t, grads in enumerate(_grads(dtype, 9), 1):
        given = grads
        if form != "dict":
            flat = opt.flat_gradients(grads)
            given = flat if form == "flat array" else fastoptim.FlatParams(opt.layout, flat)
        opt.step(given)
        expected.step(grads)
        if t % 3 == 0:
            opt.eval()
            expected.eval()
        for name in SHAPES:
            np.testing.assert_array_equal(opt.params[name], expected.params[name])
            np.testing.assert_array_equal(opt.state["z"][name], expected.z["d" + name])
        if t % 3 == 0:
            opt.train()
            expected.train()


def test_eval_gives_the_weighted_average_of_the_z_sequence():
    # with r = 0 and weight_lr_power = 0 every step weighs 1: x_t = mean(z_1, ..., z_t)
    # (the theory, not the package's in-place form), and y_t = (1 - beta1) z_t + beta1 x_t
    opt = fastoptim.AdamWScheduleFree(_start(np.float64), lr=0.05, weight_lr_power=0.0)
    zs = []
    for grads in _grads(np.float64, 7):
        opt.step(grads)
        zs.append(opt.state["z"].buffer.copy())
    x = np.mean(zs, axis=0)
    np.testing.assert_allclose(opt.params.buffer, 0.1 * zs[-1] + 0.9 * x, atol=1e-14)
    opt.eval()
    np.testing.assert_allclose(opt.params.buffer, x, atol=1e-14)
    opt.train()
    np.testing.assert_allclose(opt.params.buffer, 0.1 * zs[-1] + 0.9 * x, atol=1e-14)


def test_warmup_raises_the_rate_linearly_and_weighs_the_average_by_lr_squared():
    opt = fastoptim.AdamWScheduleFree({"w": np.zeros(1)}, lr=0.1, warmup_steps=4)
    rates, sums = [], []
    for _ in range(6):
        opt.step({"w": np.ones(1)})
        rates.append(opt.averages[0].lr_max)
        sums.append(opt.averages[0].weight_sum)
    np.testing.assert_allclose(rates, [0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(sums, np.cumsum(np.array(rates) ** 2))


def test_groups_and_clipping_follow_the_reference():
    params = _start(np.float64)
    fast = {"W2", "b2"}
    groups = [fastoptim.Group(sorted(fast), lr=0.02, weight_decay=0.0)]
    opt = fastoptim.AdamWScheduleFree(
        params, lr=0.005, weight_decay=0.1, max_grad_norm=1.0, groups=groups
    )
    # each group is its own reference: its own rate, decay and weight sums
    parts = [
        (sorted(fast), Reference({k: params[k] for k in fast}, lr=0.02, weight_decay=0.0)),
        (
            sorted(set(SHAPES) - fast),
            Reference({k: params[k] for k in SHAPES if k not in fast}, lr=0.005, weight_decay=0.1),
        ),
    ]
    for grads in _grads(np.float64, 5):
        opt.step(grads)
        norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
        clipped = {k: g * min(1.0, 1.0 / (norm + 1e-6)) for k, g in grads.items()}
        for names, expected in parts:
            expected.step({"d" + k: clipped["d" + k] for k in names})
    assert opt.averages[1].lr_max == 0.02 and opt.averages[0].lr_max == 0.005
    for names, expected in parts:
        for name in names:
            np.testing.assert_allclose(opt.params[name], expected.params[name], atol=1e-15)


def test_flat_and_dict_steps_and_thread_counts_give_the_same_bits():
    results = []
    shapes = {"big": (300_000,), "small": (7,)}
    rng = np.random.default_rng(2)
    start = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = [
        {"d" + k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        for _ in range(3)
    ]
    for threads, flat in ((1, False), (2, False), (2, True)):
        opt = fastoptim.AdamWScheduleFree(copy.deepcopy(start), lr=0.01, weight_decay=0.01)
        with fastoptim.num_threads(threads):
            for g in grads:
                opt.step(opt.flat_gradients(g) if flat else g)
            opt.eval()
        results.append(opt.params.buffer.copy())
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_a_step_in_eval_mode_raises_and_changes_nothing():
    opt = fastoptim.AdamWScheduleFree(_start(np.float64))
    opt.step(_grads(np.float64, 1)[0])
    opt.eval()
    before = (opt.params.buffer.copy(), opt.state["z"].buffer.copy(), opt.averages, opt.t)
    with pytest.raises(RuntimeError, match=r"eval mode.*call opt.train\(\) before stepping"):
        opt.step(_grads(np.float64, 1)[0])
    np.testing.assert_array_equal(opt.params.buffer, before[0])
    np.testing.assert_array_equal(opt.state["z"].buffer, before[1])
    assert (opt.averages, opt.t) == (before[2], before[3])
    opt.eval()  # already in eval mode: no second move
    np.testing.assert_array_equal(opt.params.buffer, before[0])


def test_modes_before_the_first_step_change_nothing():
    # no z before the first step (x = y = z); the package's first call is train()
    params = _start(np.float64)
    opt = fastoptim.AdamWScheduleFree(copy.deepcopy(params))
    opt.train()
    opt.eval()
    opt.train()
    for name in SHAPES:
        np.testing.assert_array_equal(opt.params[name], params[name])


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_a_checkpoint_resumes_bit_identically(tmp_path, mode):
    hp = OPTIONS["warmup, decay, r"]
    grads = _grads(np.float32, 6)
    opt = fastoptim.AdamWScheduleFree(_start(np.float32), **hp)
    for g in grads[:3]:
        opt.step(g)
    if mode == "eval":
        opt.eval()  # saved as the package advises: the parameters hold x
    fastoptim.save(tmp_path / "sf.npz", opt)
    resumed = fastoptim.AdamWScheduleFree(_start(np.float32, seed=8), **hp)
    fastoptim.load(tmp_path / "sf.npz", resumed)
    again = fastoptim.AdamWScheduleFree(_start(np.float32, seed=9), **hp)
    again.load_state_dict(opt.state_dict())
    again.params.buffer[:] = opt.params.buffer
    assert resumed.train_mode == again.train_mode == (mode == "train")
    for o in (opt, resumed, again):
        o.train()
        for g in grads[3:]:
            o.step(g)
        o.eval()
    np.testing.assert_array_equal(resumed.params.buffer, opt.params.buffer)
    np.testing.assert_array_equal(again.params.buffer, opt.params.buffer)
    assert resumed.averages == opt.averages


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda s: s.pop("running"), "state_dict\\['running'\\] must be"),
        (lambda s: s["running"].update(train_mode=1), "is 1, not a bool"),
        (lambda s: s["running"]["averages"].pop(), "must be 1 pairs of finite numbers"),
        (lambda s: s["running"]["averages"][0].__setitem__(1, float("nan")), "finite numbers"),
    ],
)
def test_a_bad_running_state_is_refused_and_changes_nothing(change, match):
    opt = fastoptim.AdamWScheduleFree(_start(np.float64))
    opt.step(_grads(np.float64, 1)[0])
    saved = opt.state_dict()
    other = fastoptim.AdamWScheduleFree(_start(np.float64, seed=5))
    before = other.state_dict()
    change(saved)
    with pytest.raises((KeyError, ValueError), match=match):
        other.load_state_dict(saved)
    after = other.state_dict()
    assert after["t"] == before["t"] == 0 and after["running"] == before["running"]


def test_another_algorithm_refuses_a_running_state():
    saved = fastoptim.AdamW({"w": np.ones(3)}).state_dict()
    saved["running"] = {"train_mode": True}
    with pytest.raises(KeyError, match="AdamW carries nothing from step to step"):
        fastoptim.AdamW({"w": np.ones(3)}).load_state_dict(saved)


def test_low_precision_state_is_refused():
    # the bad values of each hyper-parameter are the registry's (test_error_inputs.py)
    with pytest.raises(TypeError, match="AdamWScheduleFree takes no state_dtype"):
        fastoptim.AdamWScheduleFree({"w": np.ones(3)}, state_dtype="bfloat16")


@pytest.mark.parametrize("weight", [-1 / 9, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_in_place_move_is_torchs_lerp(weight, dtype):
    # torch's lerp computes from the end at |weight| >= 0.5 (weight 1 gives the end
    # exactly): the same bits as the reference's two forms, which round differently in
    # about a quarter of the elements; torch's own vectorised loop fuses the multiply-add,
    # so it is within two roundings of them
    from fastoptim.kernels.interpolation import interpolate

    rng = np.random.default_rng(4)
    start, end = (rng.standard_normal(5000).astype(dtype) for _ in range(2))
    moved = start.copy()
    interpolate.variant(moved.dtype, True)(moved, end, weight, 1.0 - weight)
    np.testing.assert_array_equal(moved, reference.lerp(start, end, weight))
    torch = pytest.importorskip("torch")
    expected = torch.lerp(torch.from_numpy(start), torch.from_numpy(end), weight).numpy()
    ulp = np.spacing(np.abs(start) + np.abs(end))  # of the largest term either form adds
    assert np.all(np.abs(moved - expected) <= 2 * ulp)


# -- against the schedulefree package ---------------------------------------------------------
def _package():
    pytest.importorskip("torch")
    return pytest.importorskip("schedulefree")


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("option", sorted(set(OPTIONS) - {"maximize"}))  # it has no maximize
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_numpy_class_matches_the_package_after_every_step_in_both_modes(foreach, option, dtype):
    schedulefree = _package()
    import torch

    params = _start(np.dtype(dtype))
    hp = OPTIONS[option]
    tensors = [torch.nn.Parameter(torch.tensor(v.copy())) for v in params.values()]
    theirs = schedulefree.AdamWScheduleFree(tensors, foreach=foreach, **hp)
    theirs.train()
    ours = fastoptim.AdamWScheduleFree(copy.deepcopy(params), **hp)
    tolerance = 1e-15 if dtype == "float64" else 3e-7  # one rounding of the package's order
    for t, grads in enumerate(_grads(np.dtype(dtype), 10), 1):
        for tensor, grad in zip(tensors, grads.values(), strict=True):
            tensor.grad = torch.tensor(grad.copy())
        theirs.step()
        ours.step(grads)
        if t % 3 == 0:
            theirs.eval()
            ours.eval()
        for tensor, name in zip(tensors, SHAPES, strict=True):
            np.testing.assert_allclose(
                ours.params[name], tensor.detach().numpy(), atol=tolerance, rtol=tolerance
            )
        if t % 3 == 0:
            theirs.train()
            ours.train()


def _models(dtype):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).to(
        dtype
    )
    return model, copy.deepcopy(model)


def _train_step(module, optimizer, batch, scaler=None):
    import torch

    optimizer.zero_grad()
    x, y = batch
    loss = torch.nn.functional.mse_loss(module(x), y)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def _batches(dtype, steps, seed=3):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(32, 5, generator=generator, dtype=dtype),
         torch.randn(32, 2, generator=generator, dtype=dtype))
        for _ in range(steps)
    ]  # fmt: skip


def _assert_same(model, peer, tolerance):
    import torch

    for a, b in zip(model.parameters(), peer.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
def test_the_torch_class_trains_as_the_package_with_groups_and_modes(dtype_name):
    schedulefree = _package()
    import torch

    import fastoptim.torch

    dtype = getattr(torch, dtype_name)
    tolerance = 1e-14 if dtype == torch.float64 else 1e-6
    model, peer = _models(dtype)

    def groups(module):  # the second layer on its own rate: its own k and weight sums
        return [
            {"params": module[0].parameters()},
            {"params": module[2].parameters(), "lr": 0.02, "warmup_steps": 3},
        ]

    hp = {"lr": 0.01, "weight_decay": 0.01, "betas": (0.9, 0.99)}
    ours = fastoptim.torch.AdamWScheduleFree(groups(model), **hp)
    theirs = schedulefree.AdamWScheduleFree(groups(peer), foreach=False, **hp)
    with pytest.raises(RuntimeError, match="not in train mode"):
        ours.step()  # both start in eval mode
    ours.train()
    theirs.train()
    for t, batch in enumerate(_batches(dtype, 12), 1):
        # a parameter without a gradient is left alone, its z too; one that steps for the
        # first time at t = 3 starts its z at its value then
        for module in (model, peer):
            module[2].bias.requires_grad_(t not in (1, 2, 6, 7))
        _train_step(model, ours, batch)
        _train_step(peer, theirs, batch)
        _assert_same(model, peer, tolerance)
        if t % 4 == 0:
            ours.eval()
            theirs.eval()
            _assert_same(model, peer, tolerance)
            ours.train()
            theirs.train()
    for mine, package in zip(ours.param_groups, theirs.param_groups, strict=True):
        for key in ("k", "lr_max", "weight_sum", "scheduled_lr", "train_mode"):
            assert mine[key] == pytest.approx(package[key], rel=1e-15), key
    for p, q in zip(model.parameters(), peer.parameters(), strict=True):
        for key in ("z", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[p][key], theirs.state[q][key],
                                       atol=tolerance, rtol=tolerance)  # fmt: skip


def test_state_dicts_load_both_ways_through_torch_save_and_training_continues():
    schedulefree = _package()
    import torch

    import fastoptim.torch

    model, peer = _models(torch.float32)
    hp = {"lr": 0.01, "warmup_steps": 2}
    ours = fastoptim.torch.AdamWScheduleFree(model.parameters(), **hp)
    theirs = schedulefree.AdamWScheduleFree(peer.parameters(), **hp)
    batches = _batches(torch.float32, 8)
    for optimizer in (ours, theirs):
        optimizer.train()
    for batch in batches[:4]:
        _train_step(model, ours, batch)
        _train_step(peer, theirs, batch)
    ours.eval()
    theirs.eval()  # checkpoints are taken in eval mode, as the package advises

    def through_torch_save(state_dict):
        saved = io.BytesIO()
        torch.save(state_dict, saved)
        saved.seek(0)
        return torch.load(saved, weights_only=True)

    # the package's checkpoint into fastoptim.torch, and fastoptim.torch's into the package
    into_ours_model, into_theirs_model = copy.deepcopy(peer), copy.deepcopy(model)
    into_ours = fastoptim.torch.AdamWScheduleFree(into_ours_model.parameters())
    into_ours.load_state_dict(through_torch_save(theirs.state_dict()))
    into_theirs = schedulefree.AdamWScheduleFree(into_theirs_model.parameters())
    into_theirs.load_state_dict(through_torch_save(ours.state_dict()))
    assert into_ours.param_groups[0]["k"] == into_theirs.param_groups[0]["k"] == 4
    pairs = [(model, ours), (peer, theirs), (into_ours_model, into_ours),
             (into_theirs_model, into_theirs)]  # fmt: skip
    for module, optimizer in pairs:
        optimizer.train()
        for batch in batches[4:]:
            _train_step(module, optimizer, batch)
        optimizer.eval()
    _assert_same(into_ours_model, model, 1e-6)
    _assert_same(into_theirs_model, model, 1e-6)
    _assert_same(model, peer, 1e-6)


def test_deepcopy_scheduler_and_grad_scaler_give_the_packages_numbers():
    schedulefree = _package()
    import torch

    import fastoptim.torch

    model, peer = _models(torch.float64)
    ours = fastoptim.torch.AdamWScheduleFree(model.parameters(), lr=0.01)
    theirs = schedulefree.AdamWScheduleFree(peer.parameters(), lr=0.01, foreach=False)
    schedules = [torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5) for o in (ours, theirs)]
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**10) for _ in range(2)]
    ours.train()
    theirs.train()
    batches = _batches(torch.float64, 9)
    for t, batch in enumerate(batches, 1):
        _train_step(model, ours, batch, scalers[0])
        _train_step(peer, theirs, batch, scalers[1])
        for schedule in schedules:
            schedule.step()
        _assert_same(model, peer, 1e-13)
        if t == 4:  # copies (model and optimizer together) continue as the originals
            copies = copy.deepcopy((model, ours)), copy.deepcopy((peer, theirs))
    assert ours.param_groups[0]["lr"] == theirs.param_groups[0]["lr"] == 0.01 * 0.5**3
    for (module, optimizer), (package_module, package) in [copies]:
        for batch in batches[4:]:
            _train_step(module, optimizer, batch)
            _train_step(package_module, package, batch)
            _assert_same(module, package_module, 1e-13)
        assert optimizer.param_groups[0]["k"] == package.param_groups[0]["k"] == 9
