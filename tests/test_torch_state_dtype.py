"""fastoptim.torch with state_dtype='bfloat16' and 'int8': the same bits as the numpy API
with that state dtype after every step; the state in torch's format (bfloat16 tensors;
int8/uint8 codes beside float32 ``<key>_scales``) through torch.save/torch.load
(weights_only=True) bit for bit; another state dtype loads only by an explicit conversion."""

from __future__ import annotations

import io

import numpy as np
import pytest

import fastoptim
from fastoptim.optim import blockwise

torch = pytest.importorskip("torch")
fastoptim_torch = pytest.importorskip("fastoptim.torch")

STATE_DTYPES = ("bfloat16", "int8")
# (torch class, numpy class, options): each state count, a gated state, decoupled decay
CASES = [
    ("AdamW", "AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
    ("Adam", "Adam", {"lr": 1e-2, "amsgrad": True}),
    ("SGD", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("RMSprop", "RMSprop", {"lr": 1e-3, "momentum": 0.5}),
    ("Adagrad", "Adagrad", {"lr": 0.05}),
    ("Lion", "Lion", {"lr": 1e-3, "weight_decay": 0.1}),
    ("NAdam", "NAdam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", "RAdam", {"lr": 1e-2}),
    ("Adamax", "Adamax", {"lr": 1e-2, "weight_decay": 0.1}),
    ("Adadelta", "Adadelta", {"lr": 1.0}),
]


def model() -> torch.nn.Module:
    torch.manual_seed(0)  # the first layer is quantized by int8 (8192 elements), not the rest
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Tanh(), torch.nn.Linear(128, 10))


def batches(steps: int):
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        yield (
            torch.randn(32, 64, generator=generator),
            torch.randint(0, 10, (32,), generator=generator),
        )


def train_step(net, optimizer, x, y):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    optimizer.step()


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype == torch.bfloat16:
        a, b = a.view(torch.int16), b.view(torch.int16)
    return a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("state_dtype", STATE_DTYPES)
@pytest.mark.parametrize(("torch_name", "numpy_name", "options"), CASES, ids=[c[0] for c in CASES])
def test_the_torch_adapter_steps_as_the_numpy_api_with_low_precision_state(
    torch_name, numpy_name, options, state_dtype
):
    net = model()
    optimizer = getattr(fastoptim_torch, torch_name)(
        net.parameters(), **options, state_dtype=state_dtype
    )
    twin_params = {f"p{i}": p.detach().numpy().copy() for i, p in enumerate(net.parameters())}
    numpy_options = dict(options)
    if numpy_name == "SGD":
        numpy_options["nesterov"] = True
    twin = getattr(fastoptim, numpy_name)(twin_params, **numpy_options, state_dtype=state_dtype)
    for x, y in batches(5):
        train_step(net, optimizer, x, y)
        twin.step({f"p{i}": p.grad.numpy() for i, p in enumerate(net.parameters())})
        for i, p in enumerate(net.parameters()):
            np.testing.assert_array_equal(p.detach().numpy(), twin_params[f"p{i}"])
    state = optimizer.state_dict()["state"][0]  # the first weight: 8192 elements
    key = next(k for k in state if k not in ("step", "mu_product") and not k.endswith("_scales"))
    expected = {"bfloat16": torch.bfloat16, "int8": (torch.int8, torch.uint8)}[state_dtype]
    assert state[key].dtype in (expected if isinstance(expected, tuple) else (expected,))
    if state_dtype == "int8":
        assert state[key + "_scales"].shape == (8192 // 256,)
        assert optimizer.state_dict()["state"][1][key].dtype == torch.float32  # a small bias


@pytest.mark.parametrize("state_dtype", STATE_DTYPES)
def test_low_precision_state_round_trips_through_torch_save_and_load(state_dtype):
    net = model()
    optimizer = fastoptim_torch.AdamW(net.parameters(), lr=1e-2, state_dtype=state_dtype)
    steps = list(batches(4))
    for x, y in steps[:3]:
        train_step(net, optimizer, x, y)
    buffer = io.BytesIO()
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    restored_net = model()
    restored_net.load_state_dict(saved["model"])
    restored = fastoptim_torch.AdamW(restored_net.parameters(), lr=1e-2, state_dtype=state_dtype)
    restored.load_state_dict(saved["optimizer"])
    x, y = steps[3]
    train_step(net, optimizer, x, y)
    train_step(restored_net, restored, x, y)
    for a, b in zip(net.parameters(), restored_net.parameters(), strict=True):
        assert torch.equal(a, b)
    ours, theirs = optimizer.state_dict()["state"], restored.state_dict()["state"]
    assert all(same(ours[i][k], theirs[i][k]) for i in ours for k in ours[i])


@pytest.mark.parametrize("state_dtype", STATE_DTYPES)
def test_another_state_dtype_loads_only_by_an_explicit_conversion(state_dtype):
    net = model()
    low = fastoptim_torch.Adam(net.parameters(), lr=1e-2, state_dtype=state_dtype)
    for x, y in batches(2):
        train_step(net, low, x, y)
    saved = low.state_dict()
    plain_net = model()
    plain = fastoptim_torch.Adam(plain_net.parameters(), lr=1e-2)
    before = {
        i: {k: v.clone() for k, v in s.items()} for i, s in plain.state_dict()["state"].items()
    }
    with pytest.raises(
        ValueError, match=r"saved with another state_dtype.*convert_state_dtype=True"
    ):
        plain.load_state_dict(saved)
    assert plain.state_dict()["state"].keys() == before.keys()
    plain.load_state_dict(saved, convert_state_dtype=True)
    assert "state_dtype" not in plain.param_groups[0]  # still the parameters' dtype, as torch
    for i, state in plain.state_dict()["state"].items():  # the decoded values, exactly
        stored = saved["state"][i]
        if "exp_avg_scales" in stored:
            codes, scales = stored["exp_avg"].numpy(), stored["exp_avg_scales"].numpy()
            expected = blockwise.layer_values(codes, scales, unsigned=False)
        else:
            expected = stored["exp_avg"].to(torch.float32).numpy()
        np.testing.assert_array_equal(state["exp_avg"].numpy(), expected)
    # and back: float32 state into the low-precision optimizer
    with pytest.raises(ValueError, match="saved with another state_dtype"):
        low.load_state_dict(plain.state_dict())
    low.load_state_dict(plain.state_dict(), convert_state_dtype=True)
    assert low.param_groups[0]["state_dtype"] == state_dtype


def test_torch_optim_reads_a_bfloat16_state_dict_as_its_own_cast():
    """torch's load_state_dict casts floating state to the parameters' dtype: a bfloat16
    checkpoint of fastoptim.torch loads into torch.optim (the values exactly, as float32)."""
    net = model()
    optimizer = fastoptim_torch.AdamW(net.parameters(), lr=1e-2, state_dtype="bfloat16")
    for x, y in batches(2):
        train_step(net, optimizer, x, y)
    reference = torch.optim.AdamW(model().parameters(), lr=1e-2)
    reference.load_state_dict(optimizer.state_dict())
    for i, state in reference.state_dict()["state"].items():
        ours = optimizer.state_dict()["state"][i]["exp_avg"]
        assert torch.equal(state["exp_avg"], ours.to(torch.float32))


def test_a_state_dtype_the_parameters_cannot_take_is_refused():
    net = model().double()
    with pytest.raises(ValueError, match=r"state_dtype='int8' does not work with float64"):
        fastoptim_torch.Adam(net.parameters(), state_dtype="int8")
    with pytest.raises(ValueError, match=r"state_dtype must be one of"):
        fastoptim_torch.Adam(model().parameters(), state_dtype="float16")


def test_int8_blocks_of_another_size_by_keyword_or_param_group():
    net = model()
    optimizer = fastoptim_torch.AdamW(
        net.parameters(), lr=1e-2, state_dtype="int8", block_size=1024
    )
    assert optimizer.param_groups[0]["block_size"] == 1024
    twin_params = {f"p{i}": p.detach().numpy().copy() for i, p in enumerate(net.parameters())}
    twin = fastoptim.AdamW(twin_params, lr=1e-2, state_dtype="int8", block_size=1024)
    for x, y in batches(3):
        train_step(net, optimizer, x, y)
        twin.step({f"p{i}": p.grad.numpy() for i, p in enumerate(net.parameters())})
        for i, p in enumerate(net.parameters()):
            np.testing.assert_array_equal(p.detach().numpy(), twin_params[f"p{i}"])
    saved = optimizer.state_dict()
    assert saved["state"][0]["exp_avg_scales"].shape == (8192 // 1024,)
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    restored = fastoptim_torch.AdamW(
        model().parameters(), lr=1e-2, state_dtype="int8", block_size=1024
    )
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    ours, theirs = saved["state"], restored.state_dict()["state"]
    assert all(same(ours[i][k], theirs[i][k]) for i in ours for k in ours[i])

    # blocks of 256 (the default) take a state of blocks of 1024 only by a conversion
    default = fastoptim_torch.AdamW(model().parameters(), lr=1e-2, state_dtype="int8")
    with pytest.raises(ValueError, match=r"holds 8 block scales.*blocks of 256.*convert_state"):
        default.load_state_dict(saved)
    default.load_state_dict(saved, convert_state_dtype=True)
    assert "block_size" not in default.param_groups[0]  # still the default blocks
    codes, scales = saved["state"][0]["exp_avg"].numpy(), saved["state"][0]["exp_avg_scales"]
    values = blockwise.layer_values(codes, scales.numpy(), False, 1024)
    requantized = blockwise.layer_codes(values, False)
    converted = default.state_dict()["state"][0]
    np.testing.assert_array_equal(converted["exp_avg"].numpy(), requantized[0])
    np.testing.assert_array_equal(converted["exp_avg_scales"].numpy(), requantized[1])

    first, *rest = model().parameters()
    grouped = fastoptim_torch.Adam(
        [{"params": [first], "block_size": 64}, {"params": rest}], lr=1e-2, state_dtype="int8"
    )
    first.grad = torch.ones_like(first)
    grouped.step()
    assert grouped.state_dict()["state"][0]["exp_avg_scales"].shape == (8192 // 64,)
    with pytest.raises(ValueError, match=r"block_size=512 applies to state_dtype='int8' only"):
        fastoptim_torch.Adam(model().parameters(), state_dtype="bfloat16", block_size=512)
