"""torch.optim.Adagrad in plain numpy, one layer at a time, as torch's documentation writes it."""

import numpy as np

from fastoptim.reference.torch_common import signed_grad


def initialize_adagrad(parameters, initial_accumulator_value):
    """torch's Adagrad state: ``sum`` starts at ``initial_accumulator_value``."""
    return (
        {"d" + name: np.full_like(p, initial_accumulator_value) for name, p in parameters.items()},
    )


def update_parameters_with_torch_adagrad(
    parameters,
    grads,
    states,
    t,
    lr,
    lr_decay,
    weight_decay,
    initial_accumulator_value,
    eps,
    maximize,
):
    """torch.optim.Adagrad, step ``t``."""
    (sums,) = states
    clr = lr / (1 + (t - 1) * lr_decay)
    for name in list(parameters):
        key = "d" + name
        g = signed_grad(grads[key], parameters[name], weight_decay, maximize)
        sums[key] = sums[key] + g * g
        parameters[name] = parameters[name] - clr * g / (np.sqrt(sums[key]) + eps)
    return parameters, states
