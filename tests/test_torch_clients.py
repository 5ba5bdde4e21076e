"""fastoptim.torch inside the client code users run, against the same client on torch.optim.

GradScaler (fused and not, with overflow steps and ``unscale_`` before clipping), accelerate's
``prepare`` of an optimizer that already has state, ZeroRedundancyOptimizer with DDP on two
gloo processes, swa_utils, OneCycleLR (which cycles betas and momentum in the param groups),
state written into ``optimizer.state`` and ``param.data`` replaced by outside code, pickling
the whole optimizer, a parameter given twice. float64 runs must stay within 1e-10 of torch
(relative to the weights); float32 runs within the spread of torch's own for-loop and fused
forms on the same run, and a few roundings per step.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
fastoptim_torch = pytest.importorskip("fastoptim.torch")

from torch_sides import (  # noqa: E402
    FLOAT32_FLOOR_PER_STEP,
    FLOAT64_BOUND,
    batches,
    distance,
    weights,
)


def mlp(dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(
        dtype
    )


def loss_of(model, batch):
    x, y = batch
    return torch.nn.functional.mse_loss(model(x), y)


# -- GradScaler ---------------------------------------------------------------------------------
SCALER_CASES = [
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "amsgrad": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("Adagrad", {"lr": 0.05, "weight_decay": 0.1}),
]
OVERFLOW_STEPS = (1, 4)  # the scaled loss is inf on these steps
UNSCALE_AND_CLIP_AT = 3  # scaler.unscale_(optimizer), then clip_grad_norm_, then step


def train_with_scaler(module, name, kwargs, dtype, overflow_steps=OVERFLOW_STEPS, steps=8):
    model = mlp(dtype)
    optimizer = getattr(module, name)(model.parameters(), **kwargs)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=2)
    trajectory = []
    for t, batch in enumerate(batches(dtype, steps)):
        optimizer.zero_grad()
        loss = loss_of(model, batch) * (float("inf") if t in overflow_steps else 1.0)
        scaler.scale(loss).backward()
        if t == UNSCALE_AND_CLIP_AT:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        scaler.step(optimizer)
        scaler.update()
        trajectory.append(weights(model))
    return trajectory, optimizer, scaler


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
@pytest.mark.parametrize("case", SCALER_CASES, ids=[c[0] for c in SCALER_CASES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_grad_scaler_matches_torch(case, fused, dtype):
    """With fused=True GradScaler leaves the gradients scaled and sets grad_scale and
    found_inf; with fused=False it unscales them itself. Either way: torch's numbers, the
    overflow steps skipped, the scale's growth and backoff as torch's."""
    name, kwargs = case
    kwargs = {**kwargs, "fused": fused}
    theirs, their_optimizer, their_scaler = train_with_scaler(torch.optim, name, kwargs, dtype)
    ours, our_optimizer, our_scaler = train_with_scaler(fastoptim_torch, name, kwargs, dtype)
    if dtype == torch.float64:
        allowed = FLOAT64_BOUND
    else:
        other, _, _ = train_with_scaler(torch.optim, name, {**kwargs, "fused": not fused}, dtype)
        spread = max(distance(a, b) for a, b in zip(theirs, other, strict=True))
        allowed = max(2 * spread, FLOAT32_FLOOR_PER_STEP * len(theirs))
    for t, (a, b) in enumerate(zip(theirs, ours, strict=True)):
        assert distance(a, b) <= allowed, f"step {t}: {distance(a, b):.3g} (allowed {allowed:.3g})"
    assert our_scaler.get_scale() == their_scaler.get_scale()
    assert step_counts(our_optimizer) == step_counts(their_optimizer)  # overflows do not count


def step_counts(optimizer) -> list[float]:
    return [float(s["step"]) for s in optimizer.state_dict()["state"].values() if "step" in s]


def test_grad_scaler_without_the_protocol_would_be_caught():
    """The bound above fails an optimizer that ignores grad_scale (what fastoptim.torch did):
    a check that cannot fail would prove nothing."""

    class IgnoresScale(fastoptim_torch.SGD):
        def step(self, closure=None):
            hidden = {key: self.__dict__.pop(key) for key in ("grad_scale", "found_inf")}
            try:
                return super().step(closure)
            finally:
                self.__dict__.update(hidden)

    kwargs = {"lr": 0.05, "momentum": 0.9, "fused": True}
    theirs, _, _ = train_with_scaler(torch.optim, "SGD", kwargs, torch.float64)
    model = mlp(torch.float64)
    optimizer = IgnoresScale(model.parameters(), **kwargs, nonfinite="ignore")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=2)
    optimizer.zero_grad()
    scaler.scale(loss_of(model, batches(torch.float64, 1)[0])).backward()
    scaler.step(optimizer)
    assert distance(theirs[0], weights(model)) > 1.0


def test_an_overflow_on_the_first_fused_step_leaves_state_as_torch():
    """Adam's first step overflows: torch's fused step leaves step 0 and zero moments;
    fastoptim.torch the same (state_dict equal, tensors too)."""
    kwargs = {"lr": 0.01, "fused": True}
    _, theirs, _ = train_with_scaler(torch.optim, "Adam", kwargs, torch.float64, (0,), steps=1)
    _, ours, _ = train_with_scaler(fastoptim_torch, "Adam", kwargs, torch.float64, (0,), steps=1)
    their_state, our_state = theirs.state_dict()["state"], ours.state_dict()["state"]
    assert our_state.keys() == their_state.keys() and len(our_state) == 4
    for index, entry in their_state.items():
        assert our_state[index].keys() == entry.keys()
        for key, value in entry.items():
            assert torch.equal(our_state[index][key], value), (index, key)


def test_fused_sgd_overflowing_on_its_first_step_starts_its_momentum_afresh():
    """torch's fused SGD keeps an uninitialised momentum buffer when its first step
    overflows (torch.empty_like, then the kernel returns), so its next steps use whatever
    that memory held. fastoptim.torch keeps no buffer and starts it at the next real step,
    which is what torch's for-loop SGD does: compared against that (README, differences)."""
    kwargs = {"lr": 0.05, "momentum": 0.9}
    overflow_first = (0, 4)
    theirs, _, _ = train_with_scaler(torch.optim, "SGD", kwargs, torch.float64, overflow_first)
    ours, _, _ = train_with_scaler(
        fastoptim_torch, "SGD", {**kwargs, "fused": True}, torch.float64, overflow_first
    )
    assert max(distance(a, b) for a, b in zip(theirs, ours, strict=True)) <= FLOAT64_BOUND


# -- accelerate ---------------------------------------------------------------------------------
def test_accelerate_prepare_of_an_optimizer_with_state_matches_torch():
    """accelerate's AcceleratedOptimizer does load_state_dict(move_to_device(state_dict()))
    when it wraps an optimizer; resuming a run through prepare() must keep the moments."""
    accelerate = pytest.importorskip("accelerate")
    data = batches(torch.float64, 10)
    accelerator = accelerate.Accelerator(cpu=True)
    trajectories = {}
    for module in (torch.optim, fastoptim_torch):
        model = mlp(torch.float64)
        optimizer = module.RMSprop(model.parameters(), lr=0.01, centered=True, momentum=0.5)
        for batch in data[:4]:  # state from before the run is prepared
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
        model, optimizer = accelerator.prepare(model, optimizer)
        for batch in data[4:]:
            optimizer.zero_grad()
            accelerator.backward(loss_of(model, batch))
            optimizer.step()
        trajectories[module.__name__] = weights(model)
    assert distance(trajectories["torch.optim"], trajectories["fastoptim.torch"]) <= FLOAT64_BOUND


# -- ZeroRedundancyOptimizer --------------------------------------------------------------------
ZERO_CLASSES = ("AdamW", "ASGD", "Adafactor")  # ASGD carries eta and mu; Adafactor factors


def test_zero_redundancy_optimizer_on_two_gloo_processes_matches_torch():
    """tests/zero_worker.py: DDP + ZeroRedundancyOptimizer(optimizer_class=...) for AdamW,
    ASGD and Adafactor, with and without parameters_as_bucket_view, resumed through
    consolidate_state_dict and load_state_dict; both ranks, every step, within 1e-10 of the
    torch.optim class of the same name."""
    worker = Path(__file__).with_name("zero_worker.py")
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(worker), *ZERO_CLASSES],
        capture_output=True, text=True, timeout=360, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted((name, rank, view) for name, rank, view, _ in results) == sorted(
        (name, rank, view) for name in ZERO_CLASSES for rank in (0, 1) for view in (False, True)
    )
    for name, rank, bucket_view, gap in results:
        assert gap <= FLOAT64_BOUND, f"{name}, rank {rank}, bucket view {bucket_view}: {gap:.3g}"


# -- swa_utils and schedulers that change betas and momentum ------------------------------------
def test_swa_utils_average_as_with_torch():
    """AveragedModel (EMA and SWA) and SWALR over the optimizer, as torch's SWA recipe."""
    from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn

    data = batches(torch.float64, 12)
    results = {}
    for module in (torch.optim, fastoptim_torch):
        model = mlp(torch.float64)
        optimizer = module.SGD(model.parameters(), lr=0.05, momentum=0.9)
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
        swa = AveragedModel(model)
        swa_scheduler = SWALR(optimizer, swa_lr=0.01, anneal_epochs=3)
        for t, batch in enumerate(data):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
            ema.update_parameters(model)
            if t >= 6:
                swa.update_parameters(model)
                swa_scheduler.step()
        results[module.__name__] = weights(model) + weights(ema) + weights(swa)
    assert distance(results["torch.optim"], results["fastoptim.torch"]) <= FLOAT64_BOUND


@pytest.mark.parametrize(
    "name, kwargs",
    [("Adam", {"lr": 0.01}), ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True})],
)
def test_one_cycle_lr_cycling_betas_and_momentum_matches_torch(name, kwargs):
    """OneCycleLR writes betas (Adam) or momentum (SGD) into the param groups every step."""
    data = batches(torch.float64, 12)
    results = {}
    for module in (torch.optim, fastoptim_torch):
        model = mlp(torch.float64)
        optimizer = getattr(module, name)(model.parameters(), **kwargs)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=12)
        for batch in data:
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
            scheduler.step()
        results[module.__name__] = weights(model)
    assert distance(results["torch.optim"], results["fastoptim.torch"]) <= FLOAT64_BOUND


# -- outside code writing state and data --------------------------------------------------------
def train(optimizer, model, data):
    for batch in data:
        optimizer.zero_grad()
        loss_of(model, batch).backward()
        optimizer.step()


def test_state_written_by_outside_code_is_adopted():
    """optimizer.state[p] = {...} (ZeroRedundancyOptimizer's load) and
    optimizer.state[p]['exp_avg'] = tensor: the next step uses the written values."""
    data = batches(torch.float64, 8)
    theirs_model, ours_model = mlp(torch.float64), mlp(torch.float64)
    theirs = torch.optim.Adam(theirs_model.parameters(), lr=0.01)
    ours = fastoptim_torch.Adam(ours_model.parameters(), lr=0.01)
    train(theirs, theirs_model, data[:3])
    train(ours, ours_model, data[:3])
    mine = list(ours_model.parameters())
    for index, param in enumerate(theirs_model.parameters()):
        written = {key: value.clone() * 1.5 for key, value in theirs.state[param].items()}
        written["step"] = theirs.state[param]["step"].clone()
        for key in ("exp_avg", "exp_avg_sq"):
            theirs.state[param][key].copy_(written[key])
        if index % 2:
            ours.state[mine[index]] = written  # the whole entry
        else:
            for key, value in written.items():  # one tensor at a time
                ours.state[mine[index]][key] = value
    train(theirs, theirs_model, data[3:])
    train(ours, ours_model, data[3:])
    assert distance(weights(theirs_model), weights(ours_model)) <= FLOAT64_BOUND


def test_bad_state_written_by_outside_code_is_refused_before_anything_changes():
    model = mlp(torch.float64)
    optimizer = fastoptim_torch.Adam(model.parameters(), lr=0.01)
    train(optimizer, model, batches(torch.float64, 2))
    before = weights(model)
    first = next(model.parameters())
    optimizer.state[first] = {**optimizer.state[first], "exp_avg": torch.zeros(3)}
    loss_of(model, batches(torch.float64, 1)[0]).backward()
    with pytest.raises(
        ValueError, match=r"\['exp_avg'\] has shape \(3,\), not a tensor of the parameter's shape"
    ):
        optimizer.step()
    assert all(map(torch.equal, before, weights(model)))


def test_the_whole_optimizer_pickles_and_steps_its_own_copy():
    """torch.save of the whole object (weights_only=False) and pickle, with the model."""
    data = batches(torch.float64, 4)
    model = mlp(torch.float64)
    optimizer = fastoptim_torch.AdamW(model.parameters(), lr=0.01, nonfinite="raise")
    train(optimizer, model, data[:2])
    buffer = io.BytesIO()
    torch.save({"model": model, "optimizer": optimizer}, buffer)
    buffer.seek(0)
    copies = [
        torch.load(buffer, weights_only=False),
        pickle.loads(pickle.dumps({"model": model, "optimizer": optimizer})),
        copy.deepcopy({"model": model, "optimizer": optimizer}),
    ]
    train(optimizer, model, data[2:])
    for restored in copies:
        assert restored["optimizer"].nonfinite.policy == "raise"
        train(restored["optimizer"], restored["model"], data[2:])
        assert all(map(torch.equal, weights(model), weights(restored["model"])))


def test_a_parameter_given_twice_warns_as_torch_and_is_updated_once():
    """torch warns (and will refuse it); its for-loop then updates the parameter twice per
    step. fastoptim.torch warns the same and holds it once (README, differences)."""
    data = batches(torch.float64, 3)
    once, twice = mlp(torch.float64), mlp(torch.float64)
    reference = torch.optim.SGD(once.parameters(), lr=0.05, momentum=0.9)
    params = list(twice.parameters())
    with pytest.warns(UserWarning, match="a parameter group with duplicate parameters"):
        ours = fastoptim_torch.SGD(params + params[:1], lr=0.05, momentum=0.9)
    train(reference, once, data)
    train(ours, twice, data)
    assert distance(weights(once), weights(twice)) <= FLOAT64_BOUND


# -- the torch releases the adapter supports ----------------------------------------------------
def test_an_unsupported_torch_is_refused_at_construction(monkeypatch):
    from fastoptim.torch import compatibility

    for version in ("2.13.0+cpu", "2.14.1+cu130"):
        compatibility.check_torch_version(version)
    model = mlp(torch.float64)
    pointers = [p.data_ptr() for p in model.parameters()]
    for version in ("2.12.1", "2.15.0", "3.0.0"):
        monkeypatch.setattr(torch, "__version__", version)
        with pytest.raises(RuntimeError, match=r"supports torch>=2.13,<2.15; this is torch "):
            fastoptim_torch.Adam(model.parameters())
    assert [p.data_ptr() for p in model.parameters()] == pointers  # nothing moved


def test_the_extra_declares_the_supported_range():
    tomllib = pytest.importorskip("tomllib")
    from fastoptim.torch import compatibility

    pyproject = tomllib.loads(Path(__file__).parents[1].joinpath("pyproject.toml").read_text())
    torch_extra = pyproject["project"]["optional-dependencies"]["torch"]
    assert torch_extra == [compatibility.SUPPORTED_TEXT] == ["torch>=2.13,<2.15"]


def test_a_float32_tensor_lr_is_used_by_its_value():
    """A float32 tensor lr on float64 parameters: torch's for-loop Adam does the step-size
    arithmetic in float32, its fused Adam (like fastoptim) in float64 from the tensor's
    value. fastoptim.torch follows the fused form (README, differences)."""
    data = batches(torch.float64, 30)
    results = {}
    for label, module, fused in (
        ("for-loop", torch.optim, False), ("fused", torch.optim, True), ("ours", fastoptim_torch, False)
    ):  # fmt: skip
        model = mlp(torch.float64)
        train(module.AdamW(model.parameters(), lr=torch.tensor(0.0123), fused=fused), model, data)
        results[label] = weights(model)
    assert distance(results["fused"], results["ours"]) <= FLOAT64_BOUND
    assert distance(results["for-loop"], results["fused"]) > 100 * FLOAT64_BOUND


def test_a_state_dict_held_by_outside_code_stays_the_live_state():
    """``st = optimizer.state[p]`` then ``st['exp_avg'] = t`` twice: both writes count, as in
    torch, where ``st`` is the state itself."""
    data = batches(torch.float64, 6)
    sides = {}
    for module in (torch.optim, fastoptim_torch):
        model = mlp(torch.float64)
        optimizer = module.Adam(model.parameters(), lr=0.01)
        train(optimizer, model, data[:2])
        held = optimizer.state[next(model.parameters())]
        for t in (2, 4):
            held["exp_avg"] = held["exp_avg"].clone() * 2.0
            train(optimizer, model, data[t : t + 2])
        sides[module.__name__] = weights(model)
    assert distance(sides["torch.optim"], sides["fastoptim.torch"]) <= FLOAT64_BOUND
