"""The registry that drives the contract tests: every algorithm, every entry point.

An algorithm joins by adding one ``Algorithm`` entry; it then gets parity with its numpy
reference at every step through every entry point, dtype checks, thread determinism,
signature counts and state_dict round-trips.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import fastoptim
from fastoptim import reference
from fastoptim.kernels.lion import lion_update
from fastoptim.kernels.schedule_free import schedule_free_update
from fastoptim.reference import (
    clipping,
    lion,
    schedule_free,
    torch_adadelta,
    torch_adagrad,
    torch_adam,
    torch_adamax,
    torch_asgd,
    torch_common,
    torch_nadam,
    torch_radam,
    torch_rmsprop,
    torch_rprop,
    torch_sgd,
)


@dataclass(frozen=True)
class ErrorInput:
    """Hyper-parameters (over the algorithm's first set) that construction and
    ``set_hyperparameters`` must refuse with ``error`` matching ``match``."""

    description: str
    hyperparameters: dict[str, Any]
    error: type[Exception]
    match: str


# Bad values of each hyper-parameter, by its declared name; an algorithm gets those of the
# hyper-parameters its declaration lists (a test checks that none is left without one)
ERROR_INPUTS: dict[str, tuple[ErrorInput, ...]] = {
    "lr": (
        ErrorInput("lr < 0", {"lr": -1.0}, ValueError, r"Invalid learning rate: -1.0"),
        ErrorInput("lr NaN", {"lr": float("nan")}, ValueError, "Invalid learning rate: nan"),
        ErrorInput("lr inf", {"lr": float("inf")}, ValueError, "Invalid learning rate: inf"),
    ),
    "betas": (
        ErrorInput("beta1 = 1", {"betas": (1.0, 0.9)}, ValueError, "beta parameter at index 0"),
        ErrorInput("beta2 < 0", {"betas": (0.9, -0.1)}, ValueError, "beta parameter at index 1"),
        ErrorInput("one beta", {"betas": (0.9,)}, ValueError, "Invalid betas"),
    ),
    "beta": (ErrorInput("beta = 1", {"beta": 1.0}, ValueError, r"beta must be in \[0, 1\)"),),
    "alpha": (ErrorInput("alpha = 1", {"alpha": 1.0}, ValueError, "Invalid alpha value: 1.0"),),
    "eps": (
        ErrorInput("eps = 0", {"eps": 0.0}, ValueError, "Invalid epsilon value: 0.0"),
        ErrorInput("eps NaN", {"eps": float("nan")}, ValueError, "Invalid epsilon value: nan"),
    ),
    "weight_decay": (
        ErrorInput("weight_decay < 0", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay"),
    ),
    "momentum": (ErrorInput("momentum < 0", {"momentum": -0.9}, ValueError, "Invalid momentum"),),
    "dampening": (
        ErrorInput("dampening < 0", {"dampening": -0.1}, ValueError, "Invalid dampening"),
    ),
    "lr_decay": (ErrorInput("lr_decay < 0", {"lr_decay": -1.0}, ValueError, "Invalid lr_decay"),),
    "initial_accumulator_value": (
        ErrorInput(
            "initial accumulator < 0",
            {"initial_accumulator_value": -1.0},
            ValueError,
            "Invalid initial_accumulator_value",
        ),
    ),
    "amsgrad": (ErrorInput("amsgrad 1", {"amsgrad": 1}, TypeError, "amsgrad must be True or"),),
    "nesterov": (ErrorInput("nesterov 1", {"nesterov": 1}, TypeError, "nesterov must be True"),),
    "centered": (ErrorInput("centered 1", {"centered": 1}, TypeError, "centered must be True"),),
    "maximize": (ErrorInput("maximize 1", {"maximize": 1}, TypeError, "maximize must be True"),),
    "state_dtype": (
        ErrorInput(
            "unknown state_dtype", {"state_dtype": "int4"}, ValueError, "state_dtype must be one of"
        ),
        ErrorInput(
            "state_dtype a dtype", {"state_dtype": np.uint16}, ValueError, "state_dtype must"
        ),
    ),
    "block_size": (
        ErrorInput("block_size 100", {"block_size": 100}, ValueError, "block_size must be a power"),
        ErrorInput(
            "block_size without int8 state",
            {"block_size": 512},
            ValueError,
            "applies to state_dtype='int8' only",
        ),
    ),
    "momentum_decay": (
        ErrorInput(
            "momentum_decay < 0", {"momentum_decay": -0.1}, ValueError, "Invalid momentum_decay"
        ),
    ),
    "decoupled_weight_decay": (
        ErrorInput(
            "decoupled_weight_decay 1",
            {"decoupled_weight_decay": 1},
            TypeError,
            "decoupled_weight_decay must be True or False",
        ),
    ),
    "rho": (
        ErrorInput("rho > 1", {"rho": 1.5}, ValueError, "Invalid rho value: 1.5"),
        ErrorInput("rho < 0", {"rho": -0.1}, ValueError, "Invalid rho value"),
    ),
    "etas": (
        ErrorInput(
            "etaminus >= 1", {"etas": (1.0, 1.2)}, ValueError, "Invalid eta values: 1.0, 1.2"
        ),
        ErrorInput("etaplus <= 1", {"etas": (0.5, 1.0)}, ValueError, "Invalid eta values"),
        ErrorInput("one eta", {"etas": (0.5,)}, ValueError, "Invalid etas"),
    ),
    "step_sizes": (
        ErrorInput("min > max", {"step_sizes": (1.0, 0.5)}, ValueError, "Invalid step sizes"),
        ErrorInput("min < 0", {"step_sizes": (-1.0, 0.5)}, ValueError, "Invalid step sizes"),
    ),
    "lambd": (ErrorInput("lambd < 0", {"lambd": -1e-4}, ValueError, "Invalid lambd value"),),
    # ASGD's alpha is a power (any value >= 0), not RMSprop's smoothing constant
    "ASGD.alpha": (ErrorInput("alpha < 0", {"alpha": -0.5}, ValueError, "Invalid alpha value"),),
    "t0": (ErrorInput("t0 NaN", {"t0": float("nan")}, ValueError, "Invalid t0 value: nan"),),
    "max_grad_norm": (
        ErrorInput("max_grad_norm 0", {"max_grad_norm": 0.0}, ValueError, "Invalid max_grad_norm"),
    ),
    "ema_decay": (
        ErrorInput("ema_decay 1", {"ema_decay": 1.0}, ValueError, r"Invalid ema_decay: 1.0"),
        ErrorInput(
            "ema_decay < 0", {"ema_decay": -0.1}, ValueError, r"must be a number in \[0, 1\)"
        ),
    ),
    "accumulation_steps": (
        ErrorInput(
            "accumulation_steps 0", {"accumulation_steps": 0}, ValueError, "Invalid accumulation"
        ),
        ErrorInput(
            "accumulation_steps 2.5",
            {"accumulation_steps": 2.5},
            ValueError,
            "must be a whole number >= 1",
        ),
    ),
    "warmup_steps": (
        ErrorInput("warmup_steps < 0", {"warmup_steps": -1}, ValueError, "Invalid warmup_steps"),
        ErrorInput(
            "warmup_steps 2.5", {"warmup_steps": 2.5}, ValueError, "must be a whole number >= 0"
        ),
    ),
    "r": (ErrorInput("r < 0", {"r": -0.5}, ValueError, "Invalid r value: -0.5"),),
    "weight_lr_power": (
        ErrorInput(
            "weight_lr_power NaN",
            {"weight_lr_power": float("nan")},
            ValueError,
            "Invalid weight_lr_power value: nan",
        ),
    ),
}
NESTEROV_ERRORS = (
    ErrorInput(
        "nesterov without momentum",
        {"nesterov": True, "momentum": 0.0, "dampening": 0.0},
        ValueError,
        "Nesterov momentum requires a momentum and zero dampening",
    ),
    ErrorInput(
        "nesterov with dampening",
        {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
        ValueError,
        "Nesterov momentum requires a momentum and zero dampening",
    ),
)


@dataclass(frozen=True)
class Algorithm:
    name: str
    # course drop-in: update(module, parameters, grads, states, t, hp) -> None; None when the
    # algorithm has no course function (then reference_update and reference_init are given)
    course_update: Callable | None
    # course initialiser: init(module, parameters) -> tuple of state dicts
    course_init: Callable | None
    # object API: make(params, hp) -> Optimizer; None when the course form has no class
    make_optimizer: Callable | None
    # optimizer state name for each course state, in course order (v, s)
    state_names: tuple[str, ...]
    # each state is a moving average of grad**power: its rounding errors scale with that
    state_grad_powers: tuple[int, ...]
    hyperparameter_sets: tuple[dict[str, Any], ...]
    # float64 results equal the reference to the last bit (same operations, same order)
    bit_identical_float64: bool
    kernel: Any = field(default=None)
    # the numpy oracle: update(parameters, grads, states, t, hp), init(parameters, hp) -> states
    reference_update: Callable | None = None
    reference_init: Callable | None = None
    # the optimizer class, whose declaration lists the hyper-parameters error inputs cover
    optimizer_class: type | None = None
    # inputs that must raise, as torch's OptimizerInfo.optim_error_inputs_func gives them:
    # every declared hyper-parameter's (ERROR_INPUTS) and the algorithm's own combinations
    own_error_inputs: tuple[ErrorInput, ...] = ()

    @property
    def error_inputs(self) -> tuple[ErrorInput, ...]:
        if self.optimizer_class is None:
            return ()
        declared = [hp.name for hp in self.optimizer_class.declaration.every_hyperparameter]
        own = self.optimizer_class.__name__
        inputs = [
            case
            for name in declared
            for case in ERROR_INPUTS.get(f"{own}.{name}", ERROR_INPUTS.get(name, ()))
        ]
        return (*inputs, *self.own_error_inputs)

    @property
    def stores_state_dtype(self) -> bool:
        """Its class takes ``state_dtype`` (its state is moving averages)."""
        if self.make_optimizer is None or not self.state_names:
            return False
        probe = self.make_optimizer({"w": np.zeros(1)}, self.hyperparameter_sets[0])
        return "state_dtype" in {hp.name for hp in probe.declaration.hyperparameters}

    def oracle_update(self, parameters, grads, states, t, hp) -> None:
        if self.reference_update is not None:
            self.reference_update(parameters, grads, states, t, hp)
        else:
            self.course_update(reference, parameters, grads, states, t, hp)

    def oracle_init(self, parameters, hp) -> tuple:
        if self.reference_init is not None:
            return self.reference_init(parameters, hp)
        return self.course_init(reference, parameters)


def _momentum_update(module, parameters, grads, states, t, hp):
    (v,) = states
    module.update_parameters_with_momentum(parameters, grads, v, hp["beta"], hp["lr"])


def _adam_update(module, parameters, grads, states, t, hp):
    v, s = states
    module.update_parameters_with_adam(
        parameters, grads, v, s, t, hp["lr"], hp["beta1"], hp["beta2"], hp["eps"]
    )


def _gd_update(module, parameters, grads, states, t, hp):
    module.update_parameters_with_gd(parameters, grads, hp["lr"])


ALGORITHMS = (
    Algorithm(
        name="momentum",
        course_update=_momentum_update,
        course_init=lambda module, p: (module.initialize_velocity(p),),
        make_optimizer=lambda params, hp: fastoptim.Momentum(
            params, lr=hp["lr"], beta=hp["beta"], groups=hp.get("groups")
        ),
        state_names=("velocity",),
        state_grad_powers=(1,),
        hyperparameter_sets=(
            {"lr": 0.01, "beta": 0.9},
            {"lr": 0.1, "beta": 0.0},
            {"lr": 0.003, "beta": 0.99},
        ),
        bit_identical_float64=True,
        kernel=fastoptim.kernels.momentum_update,
        optimizer_class=fastoptim.Momentum,
    ),
    Algorithm(
        name="adam",
        course_update=_adam_update,
        course_init=lambda module, p: module.initialize_adam(p),
        make_optimizer=lambda params, hp: fastoptim.Adam(
            params,
            lr=hp["lr"],
            betas=(hp["beta1"], hp["beta2"]),
            eps=hp["eps"],
            groups=hp.get("groups"),
        ),
        state_names=("exp_avg", "exp_avg_sq"),
        state_grad_powers=(1, 2),
        hyperparameter_sets=(
            {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
            {"lr": 0.001, "beta1": 0.0, "beta2": 0.9, "eps": 1e-3},
            {"lr": 0.05, "beta1": 0.5, "beta2": 0.5, "eps": 1e-6},
        ),
        bit_identical_float64=False,  # bias corrections are folded into two scalars
        kernel=fastoptim.kernels.adam_update,
        optimizer_class=fastoptim.Adam,
    ),
    Algorithm(
        name="gd",
        course_update=_gd_update,
        course_init=lambda module, p: (),
        make_optimizer=None,
        state_names=(),
        state_grad_powers=(),
        hyperparameter_sets=({"lr": 0.01}, {"lr": 0.5}),
        bit_identical_float64=True,
        kernel=fastoptim.kernels.gd_update,
    ),
)


def _clipped(update: Callable) -> Callable:
    """A torch-form reference update that first clips by global norm when ``hp`` asks."""

    def run(parameters, grads, states, t, hp):
        hp = dict(hp)
        max_norm = hp.pop("max_grad_norm", None)
        if max_norm is not None:
            grads = clipping.clip_by_global_norm(grads, max_norm)
        update(parameters, grads, states, t, hp)

    return run


def _torch_adam(decoupled: bool, amsgrad: bool) -> Algorithm:
    optimizer_class = fastoptim.AdamW if decoupled else fastoptim.Adam

    def make(params, hp):
        return optimizer_class(
            params, lr=hp["lr"], betas=hp["betas"], eps=hp["eps"],
            weight_decay=hp["weight_decay"], amsgrad=amsgrad, maximize=hp["maximize"],
            max_grad_norm=hp.get("max_grad_norm"), groups=hp.get("groups"),
        )  # fmt: skip

    def update(parameters, grads, states, t, hp):
        torch_adam.update_parameters_with_torch_adam(
            parameters, grads, states, t, amsgrad=amsgrad, decoupled=decoupled, **hp
        )

    names = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
    return Algorithm(
        name=("adamw" if decoupled else "adam-torch") + (" amsgrad" if amsgrad else ""),
        course_update=None,
        course_init=None,
        make_optimizer=make,
        state_names=names,
        state_grad_powers=(1, 2, 2)[: len(names)],
        hyperparameter_sets=(
            {
                "lr": 0.01,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0.1,
                "maximize": False,
            },
            {
                "lr": 0.003,
                "betas": (0.8, 0.99),
                "eps": 1e-6,
                "weight_decay": 0.0,
                "maximize": True,
                "max_grad_norm": 1.0,
            },
            {"lr": 0.05, "betas": (0.0, 0.5), "eps": 1e-3, "weight_decay": 0.5, "maximize": True},
        ),
        bit_identical_float64=False,
        kernel=fastoptim.kernels.adam_amsgrad_update if amsgrad else fastoptim.kernels.adam_update,
        reference_update=_clipped(update),
        reference_init=lambda p, hp: torch_common.initialize_state(p, len(names)),
        optimizer_class=optimizer_class,
    )


def _torch_sgd_update(parameters, grads, states, t, hp):
    torch_sgd.update_parameters_with_torch_sgd(parameters, grads, states, t, **hp)


TORCH_FORMS = (
    _torch_adam(decoupled=False, amsgrad=False),
    _torch_adam(decoupled=False, amsgrad=True),
    _torch_adam(decoupled=True, amsgrad=False),
    _torch_adam(decoupled=True, amsgrad=True),
    Algorithm(
        name="sgd",
        course_update=None,
        course_init=None,
        make_optimizer=lambda params, hp: fastoptim.SGD(params, **hp),
        state_names=("momentum_buffer",),
        state_grad_powers=(1,),
        hyperparameter_sets=(
            {
                "lr": 0.01,
                "momentum": 0.9,
                "dampening": 0.0,
                "weight_decay": 0.0,
                "nesterov": True,
                "maximize": False,
            },
            {
                "lr": 0.1,
                "momentum": 0.5,
                "dampening": 0.3,
                "weight_decay": 0.2,
                "nesterov": False,
                "maximize": True,
                "max_grad_norm": 5.0,
            },
            {
                "lr": 0.05,
                "momentum": 0.0,
                "dampening": 0.0,
                "weight_decay": 0.1,
                "nesterov": False,
                "maximize": False,
            },
        ),
        bit_identical_float64=False,
        kernel=fastoptim.kernels.sgd_update,
        reference_update=_clipped(_torch_sgd_update),
        reference_init=lambda p, hp: torch_common.initialize_state(p, 1),
        optimizer_class=fastoptim.SGD,
        own_error_inputs=NESTEROV_ERRORS,
    ),
    Algorithm(
        name="adagrad",
        course_update=None,
        course_init=None,
        make_optimizer=lambda params, hp: fastoptim.Adagrad(params, **hp),
        state_names=("sum",),
        state_grad_powers=(2,),
        hyperparameter_sets=(
            {
                "lr": 0.01,
                "lr_decay": 0.0,
                "weight_decay": 0.0,
                "initial_accumulator_value": 0.0,
                "eps": 1e-10,
                "maximize": False,
            },
            {
                "lr": 0.1,
                "lr_decay": 0.01,
                "weight_decay": 0.1,
                "initial_accumulator_value": 0.5,
                "eps": 1e-6,
                "maximize": True,
                "max_grad_norm": 2.0,
            },
        ),
        bit_identical_float64=False,
        kernel=fastoptim.kernels.adagrad_update,
        reference_update=_clipped(
            lambda p, g, s, t, hp: torch_adagrad.update_parameters_with_torch_adagrad(
                p, g, s, t, **hp
            )
        ),
        reference_init=lambda p, hp: torch_adagrad.initialize_adagrad(
            p, hp["initial_accumulator_value"]
        ),
        optimizer_class=fastoptim.Adagrad,
    ),
)


def _torch_rmsprop(centered: bool, momentum: bool) -> Algorithm:
    names = (
        ("square_avg",)
        + (("grad_avg",) if centered else ())
        + (("momentum_buffer",) if momentum else ())
    )
    shared = {"centered": centered, "momentum": 0.9 if momentum else 0.0}
    return Algorithm(
        name="rmsprop" + (" centered" if centered else "") + (" momentum" if momentum else ""),
        course_update=None,
        course_init=None,
        make_optimizer=lambda params, hp: fastoptim.RMSprop(params, **hp),
        state_names=names,
        state_grad_powers=(2, 1, 1)[: len(names)],
        hyperparameter_sets=(
            {
                "lr": 0.01,
                "alpha": 0.99,
                "eps": 1e-8,
                "weight_decay": 0.0,
                "maximize": False,
                **shared,
            },
            {
                "lr": 0.003,
                "alpha": 0.9,
                "eps": 1e-6,
                "weight_decay": 0.1,
                "maximize": True,
                "max_grad_norm": 2.0,
                **shared,
            },
        ),
        bit_identical_float64=False,
        kernel=fastoptim.kernels.rmsprop_update,
        reference_update=_clipped(
            lambda p, g, s, t, hp: torch_rmsprop.update_parameters_with_torch_rmsprop(
                p, g, s, t, **hp
            )
        ),
        reference_init=lambda p, hp: torch_common.initialize_state(p, len(names)),
        optimizer_class=fastoptim.RMSprop,
    )


TORCH_FORMS += tuple(_torch_rmsprop(c, m) for c in (False, True) for m in (False, True))

# The course Momentum with clipping: the object API only (the course function has none)
MOMENTUM_CLIPPED = Algorithm(
    name="momentum clipped",
    course_update=None,
    course_init=None,
    make_optimizer=lambda params, hp: fastoptim.Momentum(params, **hp),
    state_names=("velocity",),
    state_grad_powers=(1,),
    hyperparameter_sets=(
        {"lr": 0.01, "beta": 0.9, "max_grad_norm": 1.0},
        {"lr": 0.1, "beta": 0.5, "max_grad_norm": 1e3},  # mostly not clipping
    ),
    bit_identical_float64=False,  # the norm is summed in another order than the reference's
    kernel=fastoptim.kernels.momentum_update,
    reference_update=_clipped(
        lambda p, g, s, t, hp: reference.update_parameters_with_momentum(
            p, g, s[0], hp["beta"], hp["lr"]
        )
    ),
    reference_init=lambda p, hp: (reference.initialize_velocity(p),),
)

# Lion (Chen et al., 2023), against its plain-numpy reference (lion-pytorch's update)
LION = Algorithm(
    name="lion",
    course_update=None,
    course_init=None,
    make_optimizer=lambda params, hp: fastoptim.Lion(params, **hp),
    state_names=("exp_avg",),
    state_grad_powers=(1,),
    hyperparameter_sets=(
        {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.0, "maximize": False},
        {
            "lr": 3e-4,
            "betas": (0.95, 0.98),
            "weight_decay": 0.1,
            "maximize": True,
            "max_grad_norm": 1.0,
        },
        {"lr": 1e-2, "betas": (0.0, 0.5), "weight_decay": 1.0, "maximize": False},
    ),
    bit_identical_float64=False,  # the clipped set sums its norm in another order
    kernel=lion_update,
    reference_update=_clipped(
        lambda p, g, s, t, hp: lion.update_parameters_with_lion(p, g, s, t, **hp)
    ),
    reference_init=lambda p, hp: torch_common.initialize_state(p, 1),
    optimizer_class=fastoptim.Lion,
)


def _torch_only(
    name: str,
    optimizer_class: type,
    reference_update: Callable,
    state_names: tuple[str, ...],
    state_grad_powers: tuple[int, ...],
    hyperparameter_sets: tuple[dict[str, Any], ...],
) -> Algorithm:
    """An algorithm torch.optim has and the course has not: the class against its
    plain-numpy reference of torch's update."""
    return Algorithm(
        name=name,
        course_update=None,
        course_init=None,
        make_optimizer=lambda params, hp: optimizer_class(params, **hp),
        state_names=state_names,
        state_grad_powers=state_grad_powers,
        hyperparameter_sets=hyperparameter_sets,
        bit_identical_float64=False,
        kernel=optimizer_class.declaration.kernel(None),
        reference_update=_clipped(lambda p, g, s, t, hp: reference_update(p, g, s, t, **hp)),
        reference_init=lambda p, hp: torch_common.initialize_state(p, len(state_names)),
        optimizer_class=optimizer_class,
    )


ADAM_VARIANT_SETS = (
    {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "maximize": False},
    {
        "lr": 0.003,
        "betas": (0.8, 0.99),
        "eps": 1e-6,
        "weight_decay": 0.1,
        "maximize": True,
        "max_grad_norm": 1.0,
    },
    {"lr": 0.05, "betas": (0.0, 0.5), "eps": 1e-3, "weight_decay": 0.5, "maximize": False},
)
DECOUPLED = {"decoupled_weight_decay": True}
TORCH_ONLY = (
    _torch_only(
        "nadam",
        fastoptim.NAdam,
        torch_nadam.update_parameters_with_torch_nadam,
        ("exp_avg", "exp_avg_sq"),
        (1, 2),
        (
            *(
                {"momentum_decay": 4e-3, "decoupled_weight_decay": False, **hp}
                for hp in ADAM_VARIANT_SETS[:2]
            ),
            {**ADAM_VARIANT_SETS[2], "momentum_decay": 0.05, **DECOUPLED},
        ),
    ),
    _torch_only(
        "radam",
        fastoptim.RAdam,
        torch_radam.update_parameters_with_torch_radam,
        ("exp_avg", "exp_avg_sq"),
        (1, 2),
        (
            *({"decoupled_weight_decay": False, **hp} for hp in ADAM_VARIANT_SETS[:2]),
            {**ADAM_VARIANT_SETS[2], **DECOUPLED},
        ),
    ),
    _torch_only(
        "adamax",
        fastoptim.Adamax,
        torch_adamax.update_parameters_with_torch_adamax,
        ("exp_avg", "exp_inf"),
        (1, 1),
        ADAM_VARIANT_SETS,
    ),
    _torch_only(
        "adadelta",
        fastoptim.Adadelta,
        torch_adadelta.update_parameters_with_torch_adadelta,
        ("square_avg", "acc_delta"),
        (2, 2),
        (
            {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "maximize": False},
            {
                "lr": 0.5,
                "rho": 0.5,
                "eps": 1e-4,
                "weight_decay": 0.1,
                "maximize": True,
                "max_grad_norm": 1.0,
            },
            {"lr": 0.1, "rho": 1.0, "eps": 1e-6, "weight_decay": 0.0, "maximize": False},
        ),
    ),
    _torch_only(
        "rprop",
        fastoptim.Rprop,
        torch_rprop.update_parameters_with_torch_rprop,
        ("prev", "step_size"),
        (1, 0),
        (
            {"lr": 0.01, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50.0), "maximize": False},
            {
                "lr": 0.1,
                "etas": (0.3, 1.5),
                "step_sizes": (1e-3, 0.2),
                "maximize": True,
                "max_grad_norm": 1.0,
            },
        ),
    ),
    _torch_only(
        "asgd",
        fastoptim.ASGD,
        torch_asgd.update_parameters_with_torch_asgd,
        ("ax",),
        (0,),  # the average of the parameters: its rounding errors scale with theirs
        (
            {
                "lr": 0.01,
                "lambd": 1e-4,
                "alpha": 0.75,
                "t0": 1e6,
                "weight_decay": 0.0,
                "maximize": False,
            },
            {
                "lr": 0.1,
                "lambd": 0.1,
                "alpha": 0.5,
                "t0": 3.0,
                "weight_decay": 0.1,
                "maximize": True,
                "max_grad_norm": 1.0,
            },
            {
                "lr": 0.05,
                "lambd": 0.0,
                "alpha": 0.75,
                "t0": -2.0,
                "weight_decay": 0.0,
                "maximize": False,
            },
        ),
    ),
)


def _schedule_free_init(parameters, hp):
    """The reference's state, z made at once (the class makes it then too): (z,
    exp_avg_sq, each layer's running values; the last is the reference's alone)."""
    z = {"d" + name: np.array(value) for name, value in parameters.items()}
    sums = {key: {"k": 0, "lr_max": -1.0, "weight_sum": 0.0} for key in z}
    return z, {key: np.zeros_like(value) for key, value in z.items()}, sums


# Schedule-Free AdamW (Defazio et al., 2024), against its plain-numpy reference (the
# schedulefree package's for-loop form)
SCHEDULE_FREE_DEFAULTS = {
    hp.name: hp.default for hp in fastoptim.AdamWScheduleFree.declaration.hyperparameters
}
SCHEDULE_FREE = Algorithm(
    name="schedule-free",
    course_update=None,
    course_init=None,
    make_optimizer=lambda params, hp: fastoptim.AdamWScheduleFree(params, **hp),
    state_names=("z", "exp_avg_sq"),
    state_grad_powers=(0, 2),  # z follows the parameters: its rounding errors scale with them
    hyperparameter_sets=(
        {**SCHEDULE_FREE_DEFAULTS},
        {
            "lr": 0.05,
            "betas": (0.8, 0.99),
            "eps": 1e-6,
            "weight_decay": 0.1,
            "warmup_steps": 3,
            "r": 0.5,
            "weight_lr_power": 1.0,
            "maximize": True,
            "max_grad_norm": 1.0,
        },
        {
            **SCHEDULE_FREE_DEFAULTS,
            "lr": 0.01,
            "betas": (0.0, 0.5),
            "eps": 1e-3,
            "weight_decay": 0.5,
            "warmup_steps": 1,
            "r": 2.0,
            "weight_lr_power": 0.0,
        },
    ),
    bit_identical_float64=False,  # the clipped set sums its norm in another order
    kernel=schedule_free_update,
    reference_update=_clipped(
        lambda p, g, s, t, hp: schedule_free.update_parameters_with_adamw_schedule_free(
            p, g, *s, **hp
        )
    ),
    reference_init=_schedule_free_init,
    optimizer_class=fastoptim.AdamWScheduleFree,
)
ALGORITHMS = ALGORITHMS + TORCH_FORMS + (MOMENTUM_CLIPPED, LION, SCHEDULE_FREE) + TORCH_ONLY
COURSE_ALGORITHMS = tuple(a for a in ALGORITHMS if a.course_update is not None)
ALGORITHMS_BY_NAME = {a.name: a for a in ALGORITHMS}


# -- layouts that break careless code ---------------------------------------------------
def _many_layers(n_layers: int) -> dict[str, tuple[int, ...]]:
    rng = np.random.default_rng(7)
    shapes = {}
    for layer in range(1, n_layers // 2 + 1):
        rows, cols = (int(x) for x in rng.integers(1, 6, size=2))
        shapes[f"W{layer}"] = (rows, cols)
        shapes[f"b{layer}"] = (rows, 1)
    return shapes


LAYOUTS: dict[str, dict[str, tuple[int, ...]]] = {
    "size 1": {"W1": (1, 1)},
    "size 3": {"W1": (3,)},
    "size 100,003 (parallel)": {"W1": (100, 1000), "b1": (3, 1)},
    "empty and 0-d layers": {"W1": (2, 0), "scale": (), "b1": (3, 1), "W2": (0,)},
    "one layer": {"W1": (5, 7)},
    "200 layers": _many_layers(200),
    "W9 before W10": {
        f"{kind}{i}": (2, 2) if kind == "W" else (2, 1) for i in range(1, 13) for kind in "Wb"
    },
}


def random_parameters(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape) for name, shape in shapes.items()}


def random_grads(
    shapes: dict[str, tuple[int, ...]], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    return {"d" + name: rng.standard_normal(shape) for name, shape in shapes.items()}


# -- entry points: the same algorithm reached three ways ----------------------------------
class CourseDicts:
    """The course drop-ins with plain dicts of arrays."""

    def __init__(self, algorithm: Algorithm, parameters: dict, hp: dict) -> None:
        self.algorithm, self.hp = algorithm, hp
        self.parameters = copy.deepcopy(parameters)
        self.states = algorithm.course_init(fastoptim, self.parameters)

    def step(self, grads: dict, t: int) -> None:
        self.algorithm.course_update(fastoptim, self.parameters, grads, self.states, t, self.hp)

    def current(self) -> tuple[dict, tuple[dict, ...]]:
        return dict(self.parameters), tuple(dict(s) for s in self.states)


class CourseFlat(CourseDicts):
    """The course drop-ins with FlatParams for parameters, gradients and state."""

    def __init__(self, algorithm: Algorithm, parameters: dict, hp: dict) -> None:
        self.algorithm, self.hp = algorithm, hp
        self.parameters = fastoptim.flatten(parameters)
        self.grads = self.parameters.zeros_like(prefix="d")
        self.states = algorithm.course_init(fastoptim, self.parameters)

    def step(self, grads: dict, t: int) -> None:
        for key, value in grads.items():  # backward code writes into the views
            self.grads[key][...] = value
        self.algorithm.course_update(
            fastoptim, self.parameters, self.grads, self.states, t, self.hp
        )


class ObjectAPI:
    """The optimizer class; ``grads_as`` picks the form ``step`` receives."""

    def __init__(self, algorithm: Algorithm, parameters: dict, hp: dict, grads_as: str) -> None:
        self.algorithm, self.grads_as = algorithm, grads_as
        self.parameters = copy.deepcopy(parameters)
        self.optimizer = algorithm.make_optimizer(self.parameters, hp)
        self.flat_grads = self.optimizer.params.zeros_like(prefix="d")

    def step(self, grads: dict, t: int) -> None:
        assert self.optimizer.t == t - 1
        if self.grads_as == "dict":
            self.optimizer.step(grads)
            return
        for key, value in grads.items():
            self.flat_grads[key][...] = value
        if self.grads_as == "flat":
            self.optimizer.step(self.flat_grads)
        else:
            self.optimizer.step(self.flat_grads.buffer.copy())

    def current(self) -> tuple[dict, tuple[dict, ...]]:
        # the caller's dict was rebound to the live views: read through it
        states = tuple(
            {"d" + name: view for name, view in self.optimizer.state[key].items()}
            for key in self.algorithm.state_names
        )
        return dict(self.parameters), states


ENTRY_POINTS: dict[str, Callable] = {
    "course dicts": CourseDicts,
    "course FlatParams": CourseFlat,
    "object API, FlatParams grads": lambda a, p, hp: ObjectAPI(a, p, hp, "flat"),
    "object API, dict grads": lambda a, p, hp: ObjectAPI(a, p, hp, "dict"),
    "object API, flat array grads": lambda a, p, hp: ObjectAPI(a, p, hp, "array"),
}


def flat_entry_point(algorithm: Algorithm) -> str:
    """The entry point that runs one kernel call over the whole buffer."""
    return "course FlatParams" if algorithm.course_update else "object API, FlatParams grads"


def entry_points_for(algorithm: Algorithm) -> list[str]:
    """Course entry points for algorithms with a course function; the object API for those
    with a class."""
    return [
        name
        for name in ENTRY_POINTS
        if (algorithm.course_update if name.startswith("course") else algorithm.make_optimizer)
    ]


class Reference:
    """The plain-numpy oracle, always in float64."""

    def __init__(self, algorithm: Algorithm, parameters: dict, hp: dict) -> None:
        self.algorithm, self.hp = algorithm, hp
        self.parameters = {k: np.array(v, dtype=np.float64) for k, v in parameters.items()}
        self.states = algorithm.oracle_init(self.parameters, hp)

    def step(self, grads: dict, t: int) -> None:
        grads = {k: np.asarray(v, dtype=np.float64) for k, v in grads.items()}
        self.algorithm.oracle_update(self.parameters, grads, self.states, t, self.hp)

    def current(self) -> tuple[dict, tuple[dict, ...]]:
        # the states the optimizer keeps too (a reference may keep more: Schedule-Free's
        # running values)
        return self.parameters, self.states[: len(self.algorithm.state_names)]
