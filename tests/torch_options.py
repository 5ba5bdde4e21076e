"""Every option combination of torch.optim's Adam, AdamW, SGD, Adagrad and RMSprop, and the
main ones of NAdam, RAdam, Adamax, Adadelta, Rprop, ASGD and Adafactor, that the parity tests run: ``CASES``
is a list of (class name, keyword arguments)."""

from __future__ import annotations

import itertools


def adam_options(default_decay):
    for weight_decay, amsgrad, maximize in itertools.product(
        (0.0, default_decay, 0.5), (False, True), (False, True)
    ):
        yield {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": weight_decay,
               "amsgrad": amsgrad, "maximize": maximize}  # fmt: skip


def sgd_options():
    shapes = [(0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.0, True), (0.9, 0.3, False)]
    for (momentum, dampening, nesterov), weight_decay, maximize in itertools.product(
        shapes, (0.0, 0.1), (False, True)
    ):
        yield {"lr": 0.05, "momentum": momentum, "dampening": dampening,
               "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize}  # fmt: skip


def adagrad_options():
    for lr_decay, weight_decay, initial, maximize in itertools.product(
        (0.0, 0.01), (0.0, 0.1), (0.0, 0.5), (False, True)
    ):
        yield {"lr": 0.05, "lr_decay": lr_decay, "weight_decay": weight_decay,
               "initial_accumulator_value": initial, "eps": 1e-10, "maximize": maximize}  # fmt: skip


def rmsprop_options():
    for centered, momentum, weight_decay, maximize in itertools.product(
        (False, True), (0.0, 0.9), (0.0, 0.1), (False, True)
    ):
        yield {"lr": 0.003, "alpha": 0.95, "eps": 1e-8, "weight_decay": weight_decay,
               "momentum": momentum, "centered": centered, "maximize": maximize}  # fmt: skip


def adam_variant_options(decoupled: bool):
    for weight_decay, decoupled_decay, maximize in itertools.product(
        (0.0, 0.1), (False, True) if decoupled else (None,), (False, True)
    ):
        options = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": weight_decay,
                   "maximize": maximize}  # fmt: skip
        if decoupled_decay is not None:
            options["decoupled_weight_decay"] = decoupled_decay
        yield options


def adadelta_options():
    for rho, weight_decay, maximize in itertools.product((0.9, 0.5), (0.0, 0.1), (False, True)):
        yield {"lr": 0.5, "rho": rho, "eps": 1e-6, "weight_decay": weight_decay,
               "maximize": maximize}  # fmt: skip


def rprop_options():
    for etas, step_sizes, maximize in itertools.product(
        ((0.5, 1.2), (0.3, 1.5)), ((1e-6, 50.0), (1e-4, 0.01)), (False, True)
    ):
        yield {"lr": 0.001, "etas": etas, "step_sizes": step_sizes, "maximize": maximize}


def asgd_options():
    for lambd, t0, weight_decay, maximize in itertools.product(
        (1e-4, 0.1), (1e6, 3.0), (0.0, 0.1), (False, True)
    ):
        yield {"lr": 0.01, "lambd": lambd, "alpha": 0.75, "t0": t0,
               "weight_decay": weight_decay, "maximize": maximize}  # fmt: skip


def adafactor_options():
    yield {}
    yield {"lr": 0.05, "weight_decay": 0.1, "maximize": True}
    yield {"beta2_decay": -1.0, "eps": (1e-20, 1e-3), "d": 1.5}


CASES = (
    [("Adam", o) for o in adam_options(0.1)]
    + [("AdamW", o) for o in adam_options(0.01)]
    + [("SGD", o) for o in sgd_options()]
    + [("Adagrad", o) for o in adagrad_options()]
    + [("RMSprop", o) for o in rmsprop_options()]
    + [("NAdam", o) for o in adam_variant_options(decoupled=True)]
    + [("RAdam", o) for o in adam_variant_options(decoupled=True)]
    + [("Adamax", o) for o in adam_variant_options(decoupled=False)]
    + [("Adadelta", o) for o in adadelta_options()]
    + [("Rprop", o) for o in rprop_options()]
    + [("ASGD", o) for o in asgd_options()]
    + [("Adafactor", o) for o in adafactor_options()]
)


def case_id(case):
    name, options = case
    on = [k if v is True else f"{k}={v}" for k, v in options.items() if v not in (False, 0.0)]
    return f"{name}(" + ",".join(o for o in on if not o.startswith(("lr", "betas", "eps"))) + ")"
