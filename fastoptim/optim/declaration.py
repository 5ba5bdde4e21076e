"""The declaration of an algorithm: everything about it, written once.

An algorithm is one ``Declaration``: its hyper-parameters (name, default, check, meaning,
torch's name), which state buffers it keeps, its kernel and its pure scalar function. The
optimizer class, its signature and docstring parameters, ``hyperparameters()``, the
state_dict, the torch adapter's argument mapping, the bench and the test registry read it.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, make_dataclass, replace
from typing import Any, NamedTuple

from fastoptim.kernels import ElementwiseUpdate
from fastoptim.optim.hyperparameters import (
    check_accumulation_steps,
    check_ema_decay,
    check_max_norm,
)

# the record of an algorithm's hyper-parameters other than lr (a frozen dataclass made per
# declaration: ``settings.betas``)
Settings = Any
# scalars(settings, t, lr, weight_decay, grad_scale) -> the kernel's scalar record
ScalarFunction = Callable[[Settings, int, float, float, float], NamedTuple]


@dataclass(frozen=True)
class HyperParameter:
    """One argument of an algorithm.

    ``check(value, name)`` returns the value as stored, or raises saying what is wrong (the
    learning rate is checked by the optimizer: it may be a schedule). ``decides_state``:
    which state buffers exist depends on it, so it is fixed when the optimizer is made.
    """

    name: str
    default: Any
    check: Callable[[Any, str], Any] | None
    doc: str
    keyword_only: bool = False
    decides_state: bool = False
    torch_name: str | None = None  # torch.optim's name for it, where that differs
    in_torch: bool = True  # torch.optim's classes take it (False: fastoptim's own option)

    @property
    def torch_key(self) -> str:
        return self.torch_name or self.name


def _no_cross_check(settings: Settings) -> None:
    return None


def _no_initial_state(settings: Settings) -> Mapping[str, float]:
    return {}


# Options of every algorithm; max_grad_norm is saved with the hyper-parameters
MAX_GRAD_NORM = HyperParameter(
    "max_grad_norm",
    None,
    check_max_norm,
    "Clip by global norm as ``torch.nn.utils.clip_grad_norm_(params, max_grad_norm)`` does "
    "before each step: the gradients are scaled by ``min(1, max_grad_norm / (norm + 1e-6))``; "
    "``opt.last_grad_norm`` keeps the norm. None: no clipping.",
    keyword_only=True,
)
EMA_DECAY = HyperParameter(
    "ema_decay",
    None,
    check_ema_decay,
    "Keep an exponential moving average of the weights, updated in the step's own pass "
    "(one more read and write per element), as torch.optim.swa_utils' ``AveragedModel("
    "model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))`` updated after every step: the "
    "first step copies the weights, then ``ema = ema_decay * ema + (1 - ema_decay) * p``. "
    "``opt.ema`` holds it (keyed like the parameters); ``with opt.ema_weights():`` swaps it "
    "into the parameters in place and back. None: no average.",
    keyword_only=True,
)
ACCUMULATION_STEPS = HyperParameter(
    "accumulation_steps",
    1,
    check_accumulation_steps,
    "Update once every ``accumulation_steps`` calls of ``step``, with the mean of their "
    "gradients (optax.MultiSteps): the calls before the last add into a buffer and change "
    "no parameter; the last adds its gradients, takes the mean and updates in one pass. "
    "``t`` counts updates; ``opt.micro_steps`` the gradients waiting. 1: every call updates.",
    keyword_only=True,
)
# the options every algorithm takes after its own hyper-parameters, saved with them
COMMON_OPTIONS = (MAX_GRAD_NORM, EMA_DECAY, ACCUMULATION_STEPS)
COMMON_DOC = """\
groups : list of Group, optional
    Layers with their own settings (``lr``, and ``weight_decay`` where the algorithm has it),
    or frozen; see :class:`fastoptim.Group`.
nonfinite, max_consecutive_skips
    What a step does with NaN or Inf in the gradients: ``'skip'`` (default), ``'raise'`` or
    ``'ignore'``; see :class:`fastoptim.optim.nonfinite.NonFiniteGuard`."""
PARAMS_DOC = """\
params : FlatParams or dict of arrays
    A dict is flattened into one buffer and its entries are rebound to the live views."""


@dataclass(frozen=True)
class Declaration:
    """An algorithm, declared once.

    ``states(settings)`` names the state buffers in the order the kernel takes them (torch's
    names: ``exp_avg``, ...), None where these options keep no buffer and the kernel gets a
    zero-length place-holder. ``kernel(settings)`` is the elementwise update. ``scalars`` is
    the pure scalar function ``(settings, t, lr, weight_decay, grad_scale) -> the kernel's
    scalar record``, computed in float64 once per step. ``check(settings)`` raises on a
    combination of values that is wrong though each is fine. ``initial_state`` gives the
    value a state buffer starts at, where that is not 0.
    """

    name: str
    hyperparameters: tuple[HyperParameter, ...]  # lr first; in the signature's order
    states: Callable[[Settings], tuple[str | None, ...]]
    # None: the step is not one elementwise pass (Adafactor's reductions); the class then
    # makes its own passes in ``apply`` and ``update_layer``
    kernel: Callable[[Settings], ElementwiseUpdate] | None
    scalars: ScalarFunction
    check: Callable[[Settings], None] = _no_cross_check
    initial_state: Callable[[Settings], Mapping[str, float]] = _no_initial_state
    group_options: tuple[str, ...] = ("lr", "weight_decay")  # what a Group may set
    settings_type: type = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.hyperparameters[0].name != "lr":
            raise TypeError(f"{self.name}: the first hyper-parameter is lr")
        names = [hp.name for hp in self.hyperparameters[1:]] + [o.name for o in COMMON_OPTIONS]
        settings_type = make_dataclass(f"{self.name}Settings", names, frozen=True, slots=True)
        object.__setattr__(self, "settings_type", settings_type)

    @property
    def every_hyperparameter(self) -> tuple[HyperParameter, ...]:
        """The algorithm's hyper-parameters and the options saved with them."""
        return (*self.hyperparameters, *COMMON_OPTIONS)

    def with_defaults(self, name: str, **defaults: Any) -> Declaration:
        """This declaration under another name with other defaults (AdamW from Adam)."""
        unknown = set(defaults) - {hp.name for hp in self.hyperparameters}
        if unknown:
            raise TypeError(f"{self.name} has no hyper-parameters {sorted(unknown)}")
        hyperparameters = tuple(
            replace(hp, default=defaults[hp.name]) if hp.name in defaults else hp
            for hp in self.hyperparameters
        )
        return replace(self, name=name, hyperparameters=hyperparameters)

    def checked_settings(self, values: Mapping[str, Any]) -> Settings:
        """The settings record of ``values`` (every hyper-parameter but lr), each checked,
        then the combination; raises before anything is made."""
        checked = {}
        for hp in self.every_hyperparameter[1:]:
            value = values[hp.name]
            checked[hp.name] = value if hp.check is None else hp.check(value, hp.name)
        settings = self.settings_type(**checked)
        self.check(settings)
        return settings

    def defaults(self) -> dict[str, Any]:
        """Every hyper-parameter's default, by name."""
        return {hp.name: hp.default for hp in self.every_hyperparameter}

    def signature(self, own: list[inspect.Parameter]) -> inspect.Signature:
        """The class's signature: ``params``, the hyper-parameters in order (keyword-only
        from the first that is), then ``own`` (the optimizer's keyword-only options)."""
        params = inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        arguments = [params]
        for hp in self.every_hyperparameter:
            kind = (
                inspect.Parameter.KEYWORD_ONLY
                if hp.keyword_only
                else inspect.Parameter.POSITIONAL_OR_KEYWORD
            )
            arguments.append(inspect.Parameter(hp.name, kind, default=hp.default))
        return inspect.Signature([*arguments, *own])

    def parameters_doc(self) -> str:
        """The numpydoc ``Parameters`` section of the class, from the declaration."""
        lines = ["Parameters", "----------", PARAMS_DOC]
        for hp in self.every_hyperparameter:
            kind = "keyword-only, " if hp.keyword_only else ""
            lines.append(f"{hp.name} : {kind}default {hp.default!r}")
            lines.append(textwrap.fill(hp.doc, 84, initial_indent="    ", subsequent_indent="    "))
        lines.append(COMMON_DOC)
        return "\n".join(lines)

    def settings(self, **values: Any) -> Settings:
        """The settings record of the defaults with ``values``, NOT checked: for callers
        that checked the values under names of their own (the course drop-ins)."""
        unchecked = {hp.name: hp.default for hp in self.every_hyperparameter[1:]}
        return self.settings_type(**{**unchecked, **values})

    def state_names(self, settings: Settings) -> tuple[str, ...]:
        """The state buffers these settings keep, in the kernel's order."""
        return tuple(name for name in self.states(settings) if name is not None)

    def fixed_by(self) -> tuple[str, ...]:
        """The hyper-parameters that decide which state buffers exist."""
        return tuple(hp.name for hp in self.hyperparameters if hp.decides_state)
