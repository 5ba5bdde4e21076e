"""Parity with torch.optim itself: Adam, AdamW, SGD, Adagrad and RMSprop with every option combination torch
supports, 100 steps side by side, parameters and state compared after every step.

torch is an optional test extra (``pip install ".[test,torch]" -c constraints.txt``); without
it these tests are skipped.
"""

from __future__ import annotations

import numpy as np
import pytest
from tolerances import FLOAT32_ROUNDINGS_PER_STEP, FLOAT32_UNIT_ROUNDOFF
from torch_options import CASES, case_id

import fastoptim

torch = pytest.importorskip("torch")

STEPS = 100
SHAPES = {"W1": (64, 33), "b1": (64, 1), "W2": (5, 64), "scale": ()}
# torch keeps the state under these names; ours are the same
STATE_KEYS = {
    "Adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "AdamW": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
    "SGD": ("momentum_buffer",),
    "Adagrad": ("sum",),
    "RMSprop": ("square_avg", "grad_avg", "momentum_buffer"),
    "NAdam": ("exp_avg", "exp_avg_sq"),
    "RAdam": ("exp_avg", "exp_avg_sq"),
    "Adamax": ("exp_avg", "exp_inf"),
    "Adadelta": ("square_avg", "acc_delta"),
    "Rprop": ("prev", "step_size"),
    "ASGD": ("ax",),
    "Adafactor": ("row_var", "col_var", "variance"),  # as the parameter's shape says
}


# global-norm clipping, compared with torch.nn.utils.clip_grad_norm_ before torch's step:
# max_grad_norm 1 clips every step here (the gradients' norm is about 150), 1e6 never
CASES = CASES + [
    (name, {**options, "max_grad_norm": max_norm})
    for name, options in (CASES[5], CASES[14], CASES[26], CASES[40])
    for max_norm in (1.0, 1e6)
]


def assert_close(ours, theirs, dtype, t, scale, label):
    """float64: within 1e-10 relative to the operands' magnitude. float32: each side is
    within 8 t u scale of the exact value (tests/tolerances.py), so within twice that of
    each other."""
    if dtype == np.float64:
        tolerance = 1e-10 * scale
    else:
        tolerance = 2 * FLOAT32_ROUNDINGS_PER_STEP * t * FLOAT32_UNIT_ROUNDOFF * scale
    error = np.max(np.abs(ours - theirs), initial=0.0)
    assert error <= tolerance, f"{label} at step {t}: off by {error:.3g} > {tolerance:.3g}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_every_step_matches_torch(case, dtype):
    name, options = case
    rng = np.random.default_rng(0)
    initial = {k: np.asarray(rng.standard_normal(s), dtype) for k, s in SHAPES.items()}
    ours = getattr(fastoptim, name)({k: v.copy() for k, v in initial.items()}, **options)
    tensors = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in initial.items()}
    options = dict(options)
    max_norm = options.pop("max_grad_norm", None)  # torch clips outside the optimizer
    theirs = getattr(torch.optim, name)(list(tensors.values()), foreach=False, **options)
    grad_scale = 0.0
    for t in range(1, STEPS + 1):
        grads = {k: np.asarray(3 * rng.standard_normal(s), dtype) for k, s in SHAPES.items()}
        grad_scale = max(grad_scale, *(float(np.max(np.abs(g), initial=0)) for g in grads.values()))
        for key, tensor in tensors.items():
            tensor.grad = torch.from_numpy(grads[key].copy())
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(list(tensors.values()), max_norm)
        theirs.step()
        ours.step(grads)
        for key, tensor in tensors.items():
            expected = tensor.detach().numpy()
            scale = max(1.0, float(np.max(np.abs(expected), initial=0)), grad_scale)
            assert_close(ours.params[key], expected, dtype, t, scale, f"{key}")
            state = theirs.state[tensor]
            for state_key in STATE_KEYS[name]:
                if state_key in ours.state and state.get(state_key) is not None:
                    power = 2 if state_key.endswith("sq") else 1
                    assert_close(
                        ours.state[state_key][key], state[state_key].numpy(), dtype, t,
                        max(scale, grad_scale) ** power, f"state {state_key} {key}",
                    )  # fmt: skip


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (fastoptim.schedules.StepDecay(0.01, step_size=10, gamma=0.5),
         lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)),
        (fastoptim.schedules.Exponential(0.01, gamma=0.97),
         lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.97)),
    ],
    ids=["StepLR", "ExponentialLR"],
)  # fmt: skip
def test_schedules_match_torch_schedulers_stepped_once_per_step(ours, theirs):
    rng = np.random.default_rng(1)
    initial = {k: np.asarray(rng.standard_normal(s)) for k, s in SHAPES.items()}
    mine = fastoptim.Adam({k: v.copy() for k, v in initial.items()}, lr=ours)
    tensors = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in initial.items()}
    optimizer = torch.optim.Adam(list(tensors.values()), lr=0.01, foreach=False)
    scheduler = theirs(optimizer)
    for t in range(1, STEPS + 1):
        grads = {k: np.asarray(rng.standard_normal(s)) for k, s in SHAPES.items()}
        for key, tensor in tensors.items():
            tensor.grad = torch.from_numpy(grads[key].copy())
        assert mine.lr == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        optimizer.step()
        scheduler.step()
        mine.step(grads)
        for key, tensor in tensors.items():
            assert_close(mine.params[key], tensor.detach().numpy(), np.float64, t, 3.0, key)
