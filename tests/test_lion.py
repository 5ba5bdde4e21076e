"""Lion: what the registry's contract does not cover. sign(0) = 0, the torch class beside a
plain torch implementation of the same update and beside lion-pytorch, its state_dict both
ways, and the class signatures against torch.optim's."""

from __future__ import annotations

import copy
import inspect
import io

import numpy as np
import pytest

import fastoptim

torch = pytest.importorskip("torch")
from torch_sides import batches  # noqa: E402

import fastoptim.torch  # noqa: E402  (needs torch)


def test_a_zero_interpolation_does_not_move_the_weight():
    opt = fastoptim.Lion({"w": np.array([1.0, 2.0, 3.0])}, lr=0.5)
    opt.step({"w": np.array([0.0, 1.0, -1.0])})  # c = 0.1 * g: sign 0, +1, -1
    np.testing.assert_array_equal(opt.params["w"], [1.0, 1.5, 3.5])
    np.testing.assert_allclose(opt.state["exp_avg"]["w"], [0.0, 0.01, -0.01], rtol=1e-15)


def test_the_step_is_lr_whatever_the_gradient_scale():
    for scale in (1e-30, 1.0, 1e30):
        opt = fastoptim.Lion({"w": np.zeros(4, np.float32)}, lr=0.25, weight_decay=0.0)
        opt.step({"w": np.array([1.0, -2.0, 3.0, -4.0], np.float32) * np.float32(scale)})
        np.testing.assert_array_equal(opt.params["w"], [-0.25, 0.25, -0.25, 0.25])


class PlainLion(torch.optim.Optimizer):
    """The update written in plain torch, from the paper's Algorithm 2."""

    def __init__(self, params, lr, betas, weight_decay):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                m = self.state[p].setdefault("exp_avg", torch.zeros_like(p))
                c = beta1 * m + (1 - beta1) * p.grad
                p.mul_(1 - group["lr"] * group["weight_decay"]).add_(c.sign(), alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)


def _model(dtype):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)]
    return torch.nn.Sequential(*layers).to(dtype)


def _train(model, optimizer, data):
    for x, y in data:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


def _peers():
    peers = {"plain torch": PlainLion}
    try:
        from lion_pytorch import Lion as LionPytorch
    except ImportError:  # pragma: no cover - a test extra
        return peers
    peers["lion-pytorch"] = lambda params, **kw: LionPytorch(params, **kw)
    return peers


@pytest.mark.parametrize("peer", list(_peers()))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_torch_class_trains_as_its_peers_after_every_step(peer, dtype):
    ours_model = _model(dtype)
    peer_model = copy.deepcopy(ours_model)
    options = {"lr": 3e-3, "betas": (0.9, 0.99), "weight_decay": 0.1}
    ours = fastoptim.torch.Lion(ours_model.parameters(), **options)
    theirs = _peers()[peer](peer_model.parameters(), **options)
    for batch in batches(dtype, 40):
        _train(ours_model, ours, [batch])
        _train(peer_model, theirs, [batch])
        for a, b in zip(ours_model.parameters(), peer_model.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)  # the same operations: same bits
    state = ours.state[next(iter(ours_model.parameters()))]
    assert list(state) == ["exp_avg"]


def test_the_state_dict_goes_both_ways_with_lion_pytorch():
    lion_pytorch = pytest.importorskip("lion_pytorch")
    data = batches(torch.float32, 10)
    ours_model = _model(torch.float32)
    peer_model = copy.deepcopy(ours_model)
    ours = fastoptim.torch.Lion(ours_model.parameters(), lr=1e-3)
    theirs = lion_pytorch.Lion(peer_model.parameters(), lr=1e-3)
    _train(peer_model, theirs, data[:5])
    ours_model.load_state_dict(peer_model.state_dict())
    buffer = io.BytesIO()
    torch.save(theirs.state_dict(), buffer)
    buffer.seek(0)
    ours.load_state_dict(torch.load(buffer, weights_only=True))
    _train(ours_model, ours, data[5:])
    _train(peer_model, theirs, data[5:])
    for a, b in zip(ours_model.parameters(), peer_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    theirs.load_state_dict(ours.state_dict())  # and back
    assert theirs.state_dict()["state"][0]["exp_avg"].equal(
        ours.state_dict()["state"][0]["exp_avg"]
    )


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD", "RMSprop", "Adagrad"])
def test_each_declaration_matches_torchs_signature(name):
    """Every declared hyper-parameter torch has (all but fastoptim's own options, such as
    state_dtype) is torch's argument of that name with torch's default, and the generated
    signature lists them in torch's order."""
    theirs = inspect.signature(getattr(torch.optim, name)).parameters
    every = getattr(fastoptim, name).declaration.hyperparameters
    declared = tuple(hp for hp in every if hp.in_torch)
    assert [hp.name for hp in every if not hp.in_torch] == ["state_dtype", "block_size"]
    for hp in declared:
        assert hp.torch_key in theirs, f"torch.optim.{name} has no {hp.torch_key}"
        assert theirs[hp.torch_key].default == hp.default, hp.name
    torch_order = [n for n in theirs if n in {hp.torch_key for hp in declared}]
    assert [hp.torch_key for hp in declared] == torch_order
    ours = list(inspect.signature(getattr(fastoptim, name)).parameters)
    assert ours[: len(every) + 1] == ["params", *(hp.name for hp in every)]
