"""fastoptim.torch against torch.optim, training real models side by side.

Tolerances. Training feeds every rounding difference back through the gradients, so the
bounds are measured on each run, not guessed. torch runs its fused (or foreach) form.

- float64: fastoptim within 1e-10 of torch (relative to the weights' magnitude). Where the
  training amplifies roundings more than that, torch trains the model once more from
  weights nudged by one float64 rounding, and fastoptim must be within 10 times the
  distance that nudge grows to.
- float32: fastoptim within 10 times the distance between torch's float32 run and its
  float64 run (torch's own float32 error), plus a few float32 roundings. Two correct float32
  implementations are each that close to the float64 run; they round differently (torch
  fuses some multiply-adds, fastoptim folds the bias corrections), which makes one several
  times more accurate than the other on some runs, hence the factor 10.
  ``test_the_bounds_catch_a_small_error`` checks that a slightly wrong optimizer fails them.

The activations are smooth (SiLU, tanh): at a ReLU kink one rounding can flip a unit and
make the gradient jump, for torch against itself as much as against fastoptim.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
from torch_options import CASES, case_id

import fastoptim

torch = pytest.importorskip("torch")
fastoptim_torch = pytest.importorskip("fastoptim.torch")

STEPS = 100
BATCH = 32


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(10, 32),
        torch.nn.LayerNorm(32),
        torch.nn.Tanh(),
        torch.nn.Linear(32, 32),
        torch.nn.LayerNorm(32),
        torch.nn.SiLU(),
        torch.nn.Linear(32, 1),
    )


def cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.SiLU(),
        torch.nn.Conv2d(4, 8, 3, stride=2),
        torch.nn.SiLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 3 * 3, 3),
    )


MODELS = {"mlp": (mlp, (10,), 1), "cnn": (cnn, (1, 10, 10), 3)}


def data(model_name: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """STEPS batches of generated inputs and targets (a fixed random teacher)."""
    _, input_shape, outputs = MODELS[model_name]
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(STEPS, BATCH, *input_shape, generator=generator, dtype=torch.float64)
    teacher = torch.randn(
        int(np.prod(input_shape)), outputs, generator=generator, dtype=torch.float64
    )
    targets = torch.tanh(inputs.flatten(2) @ teacher)
    return inputs.to(dtype), targets.to(dtype)


class Run:
    """One model and its optimizer, trained one batch at a time."""

    def __init__(self, model_name, dtype, optimizer_class, options):
        self.model = MODELS[model_name][0]().to(dtype)
        self.optimizer = optimizer_class(self.model.parameters(), **options)
        # maximize=True ascends: give it the negated loss, so training still converges
        self.sign = -1.0 if options.get("maximize") else 1.0

    def step(self, inputs, targets) -> None:
        self.optimizer.zero_grad()
        loss = self.sign * torch.nn.functional.mse_loss(self.model(inputs), targets)
        loss.backward()
        self.optimizer.step()

    def flat(self) -> np.ndarray:
        return torch.cat([p.detach().double().flatten() for p in self.model.parameters()]).numpy()


def nudged(run: Run) -> Run:
    with torch.no_grad():
        for param in run.model.parameters():
            param.copy_(torch.nextafter(param, torch.full_like(param, np.inf)))
    return run


def fastest_torch_options(name: str, options: dict) -> dict:
    """torch's fused implementation where the class has one, else foreach: both are torch's
    own numbers (they differ from the for-loop one by rounding only), and quicker. ASGD's
    foreach form computes eta in float32 arithmetic, not as its for-loop (torch's CPU
    default, which fastoptim.torch follows) does: there the for-loop."""
    if name == "ASGD":
        return options
    fused = "fused" in inspect.signature(getattr(torch.optim, name)).parameters
    return {**options, "fused": True} if fused else {**options, "foreach": True}


def worst_errors(model_name, name, options, ours_options=None, measure_amplification=False):
    """Train torch.optim and fastoptim.torch (with ``ours_options`` if given) in float64
    and float32; return each dtype's worst ratio of error to bound over the steps. The
    float64 bound counts the nudged run's amplification only if ``measure_amplification``."""
    torch_class, ours_class = getattr(torch.optim, name), getattr(fastoptim_torch, name)
    torch_options = fastest_torch_options(name, options)
    runs = {
        "torch64": Run(model_name, torch.float64, torch_class, torch_options),
        "ours64": Run(model_name, torch.float64, ours_class, ours_options or options),
        "torch32": Run(model_name, torch.float32, torch_class, torch_options),
        "ours32": Run(model_name, torch.float32, ours_class, ours_options or options),
    }
    if measure_amplification:
        runs["nudged64"] = nudged(Run(model_name, torch.float64, torch_class, torch_options))
    batches = {dtype: data(model_name, dtype) for dtype in (torch.float64, torch.float32)}
    worst = {"float64": 0.0, "float32": 0.0}
    for t in range(STEPS):
        for key, run in runs.items():
            inputs, targets = batches[torch.float64 if key.endswith("64") else torch.float32]
            run.step(inputs[t], targets[t])
        flat = {key: run.flat() for key, run in runs.items()}
        exact = flat["torch64"]
        scale = max(1.0, float(np.abs(exact).max()))
        bound64 = 1e-10 * scale
        if measure_amplification:
            bound64 = max(bound64, 10 * np.abs(flat["nudged64"] - exact).max())
        own_error = np.abs(flat["torch32"] - exact).max()
        bound32 = 10 * own_error + 4 * 2.0**-24 * scale
        worst["float64"] = max(worst["float64"], np.abs(flat["ours64"] - exact).max() / bound64)
        worst["float32"] = max(
            worst["float32"], np.abs(flat["ours32"] - flat["torch32"]).max() / bound32
        )
    return worst


def assert_trains_as_with_torch(model_name, name, options):
    worst = worst_errors(model_name, name, options)
    if worst["float64"] > 1:  # then measure how much this training amplifies a rounding
        worst = worst_errors(model_name, name, options, measure_amplification=True)
    assert worst["float64"] <= 1, f"float64: {worst['float64']:.3g} times the bound"
    assert worst["float32"] <= 1, f"float32: {worst['float32']:.3g} times the bound"


MLP_CASES = [c for c in CASES if "max_grad_norm" not in c[1]]
# the CNN takes one option set of each class
CNN_CASES = [MLP_CASES[i] for i in (1, 14, 29, 41, 63)]


@pytest.mark.parametrize("case", MLP_CASES, ids=[case_id(c) for c in MLP_CASES])
def test_an_mlp_with_layernorm_trains_as_with_torch(case):
    assert_trains_as_with_torch("mlp", *case)


@pytest.mark.parametrize("case", CNN_CASES, ids=[case_id(c) for c in CNN_CASES])
def test_a_cnn_trains_as_with_torch(case):
    assert_trains_as_with_torch("cnn", *case)


@pytest.mark.parametrize(
    "wrong",
    [{"betas": (0.9, 0.991)}, {"eps": 1e-7}, {"weight_decay": 0.101}],
    ids=["beta2 0.991 for 0.99", "eps 1e-7 for 1e-8", "weight decay 0.101 for 0.1"],
)
def test_the_bounds_catch_a_small_error(wrong):
    options = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1}
    worst = worst_errors(
        "mlp", "Adam", options, ours_options={**options, **wrong}, measure_amplification=True
    )
    assert worst["float64"] > 1 and worst["float32"] > 1


def test_parameters_and_gradients_live_in_one_buffer_per_dtype():
    model = mlp()
    optimizer = fastoptim_torch.Adam(model.parameters(), lr=1e-3)
    (bucket,) = optimizer._buckets
    buffer = bucket.core.params.buffer
    for param, name in zip(bucket.params, bucket.names, strict=True):
        view = bucket.core.params[name]
        assert param.data_ptr() == view.ctypes.data  # .data is a view of the buffer
    inputs, targets = data("mlp", torch.float32)
    optimizer.zero_grad(set_to_none=False)  # no gradients yet: nothing to attach
    assert all(p.grad is None for p in model.parameters())
    torch.nn.functional.mse_loss(model(inputs[0]), targets[0]).backward()
    optimizer.step()  # the new gradients are copied in and re-attached
    grads = bucket.grads.buffer
    for param in model.parameters():
        pointer = param.grad.data_ptr()
        assert grads.ctypes.data <= pointer < grads.ctypes.data + grads.nbytes
    before = buffer.copy()
    optimizer.zero_grad(set_to_none=False)
    torch.nn.functional.mse_loss(model(inputs[1]), targets[1]).backward()  # into the buffer
    assert np.abs(grads).max() > 0 and bucket.attached()
    optimizer.step()
    assert not np.array_equal(buffer, before)


@pytest.mark.parametrize(
    "zeroing", ["optimizer none", "optimizer zeros", "model none", "model zeros"]
)
def test_every_way_of_zeroing_gradients_gives_torchs_numbers(zeroing):
    side = {}
    for name, cls in (("torch", torch.optim.AdamW), ("ours", fastoptim_torch.AdamW)):
        model = mlp().double()
        optimizer = cls(model.parameters(), lr=1e-2)
        side[name] = (model, optimizer)
    inputs, targets = data("mlp", torch.float64)
    for t in range(20):
        for model, optimizer in side.values():
            owner = optimizer if zeroing.startswith("optimizer") else model
            owner.zero_grad(set_to_none=zeroing.endswith("none"))
            torch.nn.functional.mse_loss(model(inputs[t]), targets[t]).backward()
            optimizer.step()
    assert_same_parameters(side["torch"][0], side["ours"][0])


def test_a_gradient_assigned_by_hand_is_used_and_the_buffer_reattached():
    side = {}
    for name, cls in (("torch", torch.optim.SGD), ("ours", fastoptim_torch.SGD)):
        model = mlp().double()
        side[name] = (model, cls(model.parameters(), lr=0.1, momentum=0.9))
    for t in range(5):
        for model, optimizer in side.values():
            for index, param in enumerate(model.parameters()):
                param.grad = torch.full_like(param, 0.01 * (t + index))
            optimizer.step()
    assert_same_parameters(side["torch"][0], side["ours"][0])
    assert side["ours"][1]._buckets[0].attached()


def test_parameters_without_gradients_behave_as_in_torch():
    """A frozen layer, and a layer used only on some steps: torch skips a parameter whose
    gradient is None, and its step count stays behind (Adam's bias correction uses it)."""

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body, self.even, self.odd = (torch.nn.Linear(10, 10) for _ in range(3))
            self.frozen = torch.nn.Linear(10, 10)
            self.frozen.requires_grad_(False)

        def forward(self, x, t):
            head = self.even if t % 2 == 0 else self.odd
            return head(torch.tanh(self.body(self.frozen(x))))

    side = {}
    for name, cls in (("torch", torch.optim.Adam), ("ours", fastoptim_torch.Adam)):
        model = TwoHeads().double()
        side[name] = (model, cls(model.parameters(), lr=1e-2, weight_decay=0.1))
    inputs, _ = data("mlp", torch.float64)
    for t in range(15):
        for model, optimizer in side.values():
            optimizer.zero_grad()
            model(inputs[t], t).pow(2).mean().backward()
            optimizer.step()
    assert_same_parameters(side["torch"][0], side["ours"][0])
    ours, theirs = side["ours"][1], side["torch"][1]
    for p_ours, p_theirs in zip(
        side["ours"][0].parameters(), side["torch"][0].parameters(), strict=True
    ):
        assert (p_ours in ours.state) == (p_theirs in theirs.state)
        if p_theirs in theirs.state:
            assert float(ours.state[p_ours]["step"]) == float(theirs.state[p_theirs]["step"])


def test_param_groups_and_a_scheduler_work_as_in_torch():
    side = {}
    for name, cls in (("torch", torch.optim.AdamW), ("ours", fastoptim_torch.AdamW)):
        model = mlp().double()
        decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
        no_decay = [p for n, p in model.named_parameters() if not n.endswith("weight")]
        optimizer = cls(
            [{"params": decay}, {"params": no_decay, "weight_decay": 0.0, "lr": 3e-3}],
            lr=1e-2,
            weight_decay=0.1,
        )
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
        side[name] = (model, optimizer, scheduler)
    inputs, targets = data("mlp", torch.float64)
    for t in range(20):
        for model, optimizer, scheduler in side.values():
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(inputs[t]), targets[t]).backward()
            optimizer.step()
            scheduler.step()
    assert_same_parameters(side["torch"][0], side["ours"][0])
    assert len(side["ours"][1]._buckets) == 2


@pytest.mark.parametrize("direction", ["torch to fastoptim", "fastoptim to torch"])
@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "RMSprop", "Adagrad"])
def test_state_dicts_move_both_ways_and_training_continues_identically(name, direction):
    options = {"lr": 1e-2, "weight_decay": 0.01}
    options.update(
        {"SGD": {"momentum": 0.9}, "RMSprop": {"momentum": 0.5, "centered": True}}.get(name, {})
    )
    first, second = (
        (torch.optim, fastoptim_torch)
        if direction == "torch to fastoptim"
        else (fastoptim_torch, torch.optim)
    )
    inputs, targets = data("mlp", torch.float64)

    def train(model, optimizer, steps):
        for t in steps:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(inputs[t]), targets[t]).backward()
            optimizer.step()

    model = mlp().double()
    optimizer = getattr(first, name)(model.parameters(), **options)
    train(model, optimizer, range(10))
    saved = copy.deepcopy(optimizer.state_dict())
    continued = copy.deepcopy(model)
    resumed = getattr(second, name)(continued.parameters(), **options)
    resumed.load_state_dict(saved)
    train(model, optimizer, range(10, 20))
    train(continued, resumed, range(10, 20))
    assert_same_parameters(model, continued, rtol=1e-12)


def test_a_state_dict_of_another_model_is_refused_and_changes_nothing():
    model = mlp().double()
    optimizer = fastoptim_torch.Adam(model.parameters(), lr=1e-2)
    inputs, targets = data("mlp", torch.float64)
    torch.nn.functional.mse_loss(model(inputs[0]), targets[0]).backward()
    optimizer.step()
    bad = copy.deepcopy(optimizer.state_dict())
    bad["state"][0]["exp_avg"] = torch.zeros(3, 3, dtype=torch.float64)
    before = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(ValueError, match=r"state of 'param0'\['exp_avg'\].*another model"):
        optimizer.load_state_dict(bad)
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for index, state in before["state"].items():
        for key, value in state.items():
            assert torch.equal(after["state"][index][key], value)


def test_bfloat16_autocast_with_float32_master_weights():
    """Under autocast the forward runs in bfloat16; the weights and gradients stay float32.
    The bound: how far torch's own run moves when its initial weights are nudged by one
    float32 rounding (the size of the differences two optimizers' roundings make)."""
    inputs, targets = data("mlp", torch.float32)
    runs = []
    for cls, nudge in (
        (torch.optim.Adam, False),
        (torch.optim.Adam, True),
        (fastoptim_torch.Adam, False),
    ):
        model = mlp()
        if nudge:
            with torch.no_grad():
                for param in model.parameters():
                    param.copy_(torch.nextafter(param, torch.full_like(param, np.inf)))
        runs.append((model, cls(model.parameters(), lr=1e-2)))
    for t in range(STEPS):
        for model, optimizer in runs:
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = torch.nn.functional.mse_loss(model(inputs[t]), targets[t])
            loss.backward()
            assert all(p.grad.dtype == torch.float32 for p in model.parameters())
            optimizer.step()
        flat = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m, _ in runs]
        spread = (flat[1] - flat[0]).abs().max().item()
        error = (flat[2] - flat[0]).abs().max().item()
        assert error <= 3 * spread + 4 * 2.0**-24, (
            f"step {t + 1}: {error:.3g} vs spread {spread:.3g}"
        )
    assert all(p.dtype == torch.float32 for p in runs[2][0].parameters())


def test_options_fastoptim_cannot_honour_are_refused():
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        fastoptim_torch.Adam(mlp().parameters(), differentiable=True)
    with pytest.raises(TypeError, match=r"float32 or float64.*torch\.autocast"):
        fastoptim_torch.Adam(mlp().to(torch.bfloat16).parameters())


def test_named_parameters_name_the_layers_in_messages():
    model = mlp()
    optimizer = fastoptim_torch.SGD(model.named_parameters(), lr=0.1, nonfinite="raise")
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    model[3].bias.grad[0] = float("nan")
    with pytest.raises(fastoptim.NonFiniteGradientError, match=r"grads\['3.bias'\]"):
        optimizer.step()


def assert_same_parameters(expected_model, model, rtol=1e-10):
    for (name, expected), actual in zip(
        expected_model.named_parameters(), model.parameters(), strict=True
    ):
        np.testing.assert_allclose(
            actual.detach().numpy(), expected.detach().numpy(), rtol=rtol, atol=rtol, err_msg=name
        )


def test_replaced_parameter_data_is_kept_and_updated():
    """``p.data = ...`` (module code, ZeroRedundancyOptimizer's bucket views) is noticed: the
    parameter keeps its new data, which each step reads and updates (whoever holds that
    tensor sees the new weights); a new dtype or shape is refused."""
    side, replaced = {}, {}
    for name, cls in (("torch", torch.optim.SGD), ("ours", fastoptim_torch.SGD)):
        model = mlp().double()
        side[name] = (model, cls(model.parameters(), lr=0.1, momentum=0.9))
    inputs, targets = data("mlp", torch.float64)
    for t in range(4):
        for model, optimizer in side.values():
            if t == 2:
                replaced[id(model)] = torch.full_like(model[0].weight, 0.5)
                model[0].weight.data = replaced[id(model)]
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(inputs[t]), targets[t]).backward()
            optimizer.step()
    assert_same_parameters(side["torch"][0], side["ours"][0])
    model, optimizer = side["ours"]
    holder = replaced[id(model)]
    assert model[0].weight.data_ptr() == holder.data_ptr()  # the new data stays the parameter's
    assert not torch.equal(holder, torch.full_like(holder, 0.5))  # and was updated
    model[0].weight.data = model[0].weight.data.float()
    torch.nn.functional.mse_loss(model.float()(inputs[0].float()), targets[0].float()).backward()
    with pytest.raises(ValueError, match="construct a new optimizer"):
        optimizer.step()


def test_a_param_group_added_mid_training_keeps_the_state_and_matches_torch():
    side = {}
    for name, cls in (("torch", torch.optim.Adam), ("ours", fastoptim_torch.Adam)):
        model = mlp().double()
        params = list(model.parameters())
        side[name] = (model, cls(params[:4], lr=1e-2), params)
    inputs, targets = data("mlp", torch.float64)
    for t in range(12):
        for model, optimizer, params in side.values():
            if t == 5:  # e.g. unfreezing the top of a model
                optimizer.add_param_group({"params": params[4:], "lr": 3e-3})
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(inputs[t]), targets[t]).backward()
            optimizer.step()
    assert_same_parameters(side["torch"][0], side["ours"][0])
    assert len(side["ours"][1]._buckets) == 2


def test_nadam_mu_product_is_torchs_and_one_that_differs_from_its_step_is_refused():
    """``state[p]['mu_product']`` is computed from the step count: the same float32 bits as
    torch's product after every step. A loaded value far from its step's product (torch
    trained with another momentum_decay for a while) is refused, and nothing changes."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    twin = copy.deepcopy(net)
    ours = fastoptim_torch.NAdam(net.parameters(), lr=1e-2, momentum_decay=0.01)
    theirs = torch.optim.NAdam(twin.parameters(), lr=1e-2, momentum_decay=0.01)
    x = torch.randn(8, 4)
    for _ in range(5):
        for model, optimizer in ((net, ours), (twin, theirs)):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
        for p, q in zip(net.parameters(), twin.parameters(), strict=True):
            mine, torchs = ours.state[p]["mu_product"], theirs.state[q]["mu_product"]
            assert mine.dtype == torchs.dtype == torch.float32 and torch.equal(mine, torchs)
    saved = theirs.state_dict()
    assert ours.state_dict()["state"][0]["mu_product"].item() == saved["state"][0]["mu_product"]
    changed = copy.deepcopy(saved)
    changed["state"][0]["mu_product"] = torch.tensor(0.5)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ValueError, match=r"mu_product.*computes mu_product from the step count"):
        ours.load_state_dict(changed)
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))
    assert ours.state_dict()["state"][0]["step"].item() == 5.0
    ours.load_state_dict(saved)  # torch's own, at the same step: taken


def test_asgd_carries_eta_and_mu_as_torch_and_adopts_loaded_ones():
    """torch computes ASGD's ``eta`` after a step from that step's lr: a change of lr acts
    one step late, and a loaded ``eta`` is what the next step uses (here torch's, saved
    after steps at lr 0.1, continued at lr 0.02, with groups of two lrs)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).double()
    twin, late = copy.deepcopy(net), copy.deepcopy(net)

    def groups(model, lr):
        return [{"params": model[0].parameters(), "lr": lr}, {"params": model[1].parameters()}]

    options = {"lambd": 0.5, "t0": 2.0}
    ours = fastoptim_torch.ASGD(groups(net, 0.1), lr=0.05, **options)
    theirs = torch.optim.ASGD(groups(twin, 0.1), lr=0.05, **options)
    x = torch.randn(8, 4, dtype=torch.float64)

    def train(pairs, steps):
        for _ in range(steps):
            for model, optimizer in pairs:
                optimizer.zero_grad()
                model(x).square().mean().backward()
                optimizer.step()

    train([(net, ours), (twin, theirs)], 4)
    for optimizer in (ours, theirs):
        optimizer.param_groups[0]["lr"] = 0.02
    train([(net, ours), (twin, theirs)], 3)
    for p, q in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=0, atol=1e-12)
        for key in ("eta", "mu", "ax"):
            assert torch.allclose(ours.state[p][key].double(), theirs.state[q][key].double())
    saved = theirs.state_dict()
    loaded = fastoptim_torch.ASGD(groups(late, 0.1), lr=0.05, **options)
    loaded.load_state_dict(saved)
    for p in late.parameters():
        with torch.no_grad():
            p.copy_(dict(zip(late.parameters(), twin.parameters(), strict=True))[p])
    for optimizer in (loaded, theirs):
        optimizer.param_groups[0]["lr"] = 0.3  # taken after the next step
    train([(late, loaded), (twin, theirs)], 2)
    for p, q in zip(late.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=0, atol=1e-12)
