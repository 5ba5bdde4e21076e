"""fastoptim.torch driven by torch's own optimizer test data (``optim_db``).

For every class fastoptim.torch has, every CPU option set torch's tests use
(``optim_inputs_func`` with the ``fused`` variants torch adds, plus ``foreach``, which
torch does not add on the CPU) trains side by side with the same torch.optim class. Each
run uses what client code uses: named param groups with different rates, a parameter whose
gradient is None on some steps, ``zero_grad(set_to_none=False)`` on every other step,
``step(closure)``, torch's own scheduler inputs for the class, and the self round trip
``load_state_dict(state_dict())`` (accelerate's prepare). After training: the state_dict has
torch's format key for key, loads both ways through ``torch.save``/``torch.load(weights_only=
True)`` and training goes on alike, and a deepcopy keeps every public attribute and steps
its own copied parameters. Every error input raises (or warns) as torch's tests require.

Bounds: float64 within 1e-10 of the weights' scale after every step (for ASGD, whose
foreach form computes eta in float32 arithmetic, or twice the spread between torch's own
two forms on the same run where that is larger). float32 within twice the spread between
torch's for-loop and fused (else foreach) forms, measured here, and never tighter than a
few float32 roundings per step.
"""

from __future__ import annotations

import copy
import inspect
import io

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")  # torch's test data imports it
fastoptim_torch = pytest.importorskip("fastoptim.torch")

from torch.testing._internal.common_optimizers import (  # noqa: E402
    OptimizerErrorEnum,
    _get_optim_inputs_including_global_cliquey_kwargs,
    optim_db,
)
from torch_sides import (  # noqa: E402
    FLOAT32_FLOOR_PER_STEP,
    FLOAT64_BOUND,
    batches,
    distance,
    weights,
)

# every fastoptim.torch class that torch's optim_db has data for: a class added to
# fastoptim.torch is driven by torch's own inputs and error inputs without another line here
CLASSES = tuple(
    name for name in fastoptim_torch.__all__ if name in {info.name for info in optim_db}
)
assert set(CLASSES) >= {"Adam", "AdamW", "SGD", "RMSprop", "Adagrad"}, CLASSES
INFOS = {info.name: info for info in optim_db if info.name in CLASSES}
STEPS = 12
ROUND_TRIP_AT = 5  # the self round trip happens before this step


def optim_inputs():
    """(class name, description, kwargs) for every CPU input torch's tests run."""
    for name in CLASSES:
        info = INFOS[name]
        inputs = _get_optim_inputs_including_global_cliquey_kwargs("cpu", torch.float32, info)
        for optim_input in inputs:
            yield name, optim_input.desc, optim_input.kwargs
        for optim_input in info.optim_inputs_func("cpu"):  # foreach, which torch adds elsewhere
            yield name, optim_input.desc + " & foreach", {**optim_input.kwargs, "foreach": True}


INPUTS = list(optim_inputs())
TRAINED = [entry for entry in INPUTS if not entry[2].get("differentiable")]
REFUSED = [entry for entry in INPUTS if entry[2].get("differentiable")]


def input_id(entry) -> str:
    return f"{entry[0]}-{entry[1]}".replace(" ", "_")


class Model(torch.nn.Module):
    """A smooth MLP and one extra parameter that only some steps use (its gradient is then
    None on the steps that set gradients to None and skip it)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(5, 12), torch.nn.Tanh(), torch.nn.Linear(12, 1)
        ).to(dtype)
        self.extra = torch.nn.Parameter(torch.full((1,), 0.3, dtype=dtype))

    def forward(self, x: torch.Tensor, use_extra: bool) -> torch.Tensor:
        out = self.net(x)
        return out + x[:, :1] * self.extra if use_extra else out


def param_groups(name: str, model: Model, kwargs: dict) -> list[dict]:
    """Two named groups, the second at half the rate (a tensor rate stays a tensor)."""
    named = list(model.named_parameters())
    default = inspect.signature(getattr(torch.optim, name)).parameters["lr"].default
    return [{"params": named[:2]}, {"params": named[2:], "lr": kwargs.get("lr", default) * 0.5}]


class Side:
    """One optimizer class on its own copy of the model, with torch's schedulers for it."""

    def __init__(
        self, cls, name: str, kwargs: dict, dtype: torch.dtype, schedulers: bool = True
    ) -> None:
        self.model = Model(dtype)
        self.kwargs = copy.deepcopy(kwargs)  # a tensor lr is the optimizer's own
        self.optimizer = cls(param_groups(name, self.model, self.kwargs), **self.kwargs)
        makers = INFOS[name].scheduler_inputs[0] if schedulers else []
        self.schedulers = [make(self.optimizer) for make in makers]

    def train_step(self, t: int, batch) -> None:
        x, y = batch
        use_extra = t % 3 != 1
        self.optimizer.zero_grad(set_to_none=t % 2 == 0)

        def closure():
            self.optimizer.zero_grad(set_to_none=t % 2 == 0)
            loss = torch.nn.functional.mse_loss(self.model(x, use_extra), y)
            loss.backward()
            return loss

        if t % 2:
            loss = self.optimizer.step(closure)
        else:
            loss = closure()
            self.optimizer.step()
        for scheduler in self.schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(loss.item())
            else:
                scheduler.step()

    def weights(self) -> list[torch.Tensor]:
        return weights(self.model)


def other_form(name: str, kwargs: dict) -> dict:
    """torch's other implementation of the same input: fused toggled, else foreach."""
    if "fused" in INFOS[name].supported_impls:
        return {**kwargs, "fused": not kwargs.get("fused", False), "foreach": False}
    return {**kwargs, "foreach": not kwargs.get("foreach", False)}


# classes whose two torch forms give other numbers in float64 too (ASGD's foreach form
# computes eta in float32 arithmetic): there the float64 bound takes their spread
FLOAT64_FORMS_DIFFER = {"ASGD"}


def train_side_by_side(name: str, kwargs: dict, dtype: torch.dtype):
    sides = {
        "torch": Side(getattr(torch.optim, name), name, kwargs, dtype),
        "ours": Side(getattr(fastoptim_torch, name), name, kwargs, dtype),
    }
    compare_forms = dtype == torch.float32 or name in FLOAT64_FORMS_DIFFER
    if compare_forms:
        sides["torch other form"] = Side(
            getattr(torch.optim, name), name, other_form(name, kwargs), dtype
        )
    data = batches(dtype, STEPS + 3)
    distances, spreads = [], []
    for t in range(STEPS):
        if t == ROUND_TRIP_AT:
            for side in sides.values():
                side.optimizer.load_state_dict(side.optimizer.state_dict())
        for side in sides.values():
            side.train_step(t, data[t])
        reference = sides["torch"].weights()
        distances.append(distance(reference, sides["ours"].weights()))
        if compare_forms:
            spreads.append(distance(reference, sides["torch other form"].weights()))
    return sides, data, distances, spreads


def bound(dtype: torch.dtype, spreads: list[float], steps: int) -> float:
    if dtype == torch.float64:
        return max(FLOAT64_BOUND, 2 * max(spreads, default=0.0))
    return max(2 * max(spreads), FLOAT32_FLOOR_PER_STEP * steps)


def saved_and_loaded(state_dict: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# state whose dtype differs from torch's on purpose (the README's table of differences):
# NAdam's mu_product is always float32 here; torch's load_state_dict casts its own to the
# parameters' dtype (the self round trip above does that on torch's side)
DTYPE_DIFFERS = {"mu_product", "eta", "mu"}


def format_of(state_dict: dict) -> dict:
    """The state_dict's structure: state keys, dtypes and shapes; param group keys."""

    def dtype(key, value):
        return None if key in DTYPE_DIFFERS else getattr(value, "dtype", None)

    return {
        "state": {
            index: {key: (type(v).__name__, dtype(key, v), tuple(getattr(v, "shape", ())))
                    for key, v in entry.items()}
            for index, entry in state_dict["state"].items()
        },
        "param_groups": [sorted(group) for group in state_dict["param_groups"]],
    }  # fmt: skip


def public_attributes(optimizer) -> set[str]:
    return {key for key in optimizer.__dict__ if not key.startswith("_")}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("entry", TRAINED, ids=input_id)
def test_trains_as_torch_in_client_code(entry, dtype):
    name, _, kwargs = entry
    sides, data, distances, spreads = train_side_by_side(name, kwargs, dtype)
    allowed = bound(dtype, spreads, STEPS)
    worst = max(range(STEPS), key=distances.__getitem__)
    assert distances[worst] <= allowed, (
        f"step {worst}: {distances[worst]:.3g} from torch (allowed {allowed:.3g})"
    )
    torch_side, ours = sides["torch"], sides["ours"]
    assert format_of(ours.optimizer.state_dict()) == format_of(torch_side.optimizer.state_dict())

    # both ways through torch.save / torch.load(weights_only=True), then training goes on
    crossed = {
        "torch from ours": (torch.optim, ours),
        "ours from torch": (fastoptim_torch, torch_side),
    }
    for label, (module, source) in crossed.items():
        side = Side(getattr(module, name), name, kwargs, dtype, schedulers=False)
        with torch.no_grad():
            for target, weight in zip(side.model.parameters(), source.weights(), strict=True):
                target.copy_(weight)
        side.optimizer.load_state_dict(saved_and_loaded(source.optimizer.state_dict()))
        sides[label] = side
    for side in sides.values():
        side.schedulers = []
    for t in range(STEPS, STEPS + 3):
        for side in sides.values():
            side.train_step(t, data[t])
    if dtype == torch.float32:
        spreads.append(distance(sides["torch"].weights(), sides["torch other form"].weights()))
    allowed = bound(dtype, spreads, STEPS + 3)
    for label in ("ours", "torch from ours", "ours from torch"):
        gap = distance(sides["torch"].weights(), sides[label].weights())
        assert gap <= allowed, (
            f"{label}: {gap:.3g} from torch after reloading (allowed {allowed:.3g})"
        )

    # a deepcopy keeps every public attribute and steps its own copied parameters (torch's
    # test_deepcopy_copies_all_public_attrs; an optimizer no scheduler has wrapped)
    ours = sides["ours from torch"]
    copied = copy.deepcopy(ours)
    assert public_attributes(copied.optimizer) == public_attributes(ours.optimizer)
    before = ours.weights()
    copied.train_step(STEPS + 3, data[0])
    assert all(map(torch.equal, ours.weights(), before))  # the original did not move
    ours.train_step(STEPS + 3, data[0])
    assert all(map(torch.equal, ours.weights(), copied.weights()))


@pytest.mark.parametrize("entry", REFUSED, ids=input_id)
def test_differentiable_inputs_are_refused_clearly(entry):
    """fastoptim.torch has no autograd through the step: torch's differentiable=True
    inputs get a clear error before anything moves (the parameters keep their data)."""
    name, _, kwargs = entry
    model = Model(torch.float64)
    pointers = [p.data_ptr() for p in model.parameters()]
    with pytest.raises(ValueError, match="differentiable=True is not supported"):
        getattr(fastoptim_torch, name)(param_groups(name, model, kwargs), **copy.deepcopy(kwargs))
    assert [p.data_ptr() for p in model.parameters()] == pointers


def error_inputs():
    for name in CLASSES:
        for error_input in INFOS[name].optim_error_inputs_func(device="cpu", dtype=torch.float32):
            yield name, error_input


ERROR_INPUTS = list(error_inputs())


@pytest.mark.parametrize(
    "entry",
    ERROR_INPUTS,
    ids=[f"{n}-{e.optimizer_error_input.desc}".replace(" ", "_") for n, e in ERROR_INPUTS],
)
def test_error_inputs_raise_as_torch(entry):
    """As torch's own test_errors: the error (or warning) type and message."""
    name, error_input = entry
    cls = getattr(fastoptim_torch, name)
    optim_input = error_input.optimizer_error_input
    params, kwargs = optim_input.params, optim_input.kwargs
    if any(isinstance(p, torch.Tensor) and p.is_complex() for p in params or ()):
        # torch refuses complex parameters at the first step (Adafactor); fastoptim.torch
        # when it is made (the README's table of differences: parameter dtypes)
        with pytest.raises(TypeError, match=r"complex64; fastoptim.torch keeps float32 or"):
            cls(params, **kwargs)
        return
    if error_input.error_on == OptimizerErrorEnum.CONSTRUCTION_ERROR:
        if issubclass(error_input.error_type, Warning):
            with pytest.warns(error_input.error_type, match=error_input.error_regex):
                cls(params, **kwargs)
        else:
            with pytest.raises(error_input.error_type, match=error_input.error_regex):
                cls(params, **kwargs)
    else:
        optimizer = cls(params, **kwargs)
        with pytest.raises(error_input.error_type, match=error_input.error_regex):
            optimizer.step()


def test_the_inputs_are_torchs_own():
    """The data really is torch's: every class, many inputs, the error inputs too."""
    assert {entry[0] for entry in TRAINED} == set(CLASSES)
    assert len(TRAINED) >= 60 and len(ERROR_INPUTS) >= 30
