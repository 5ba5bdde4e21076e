"""torch.optim.Adadelta in plain numpy, one layer at a time, as torch's documentation writes
it."""

import numpy as np

from fastoptim.reference.torch_common import signed_grad


def update_parameters_with_torch_adadelta(
    parameters, grads, states, t, lr, rho, eps, weight_decay, maximize
):
    """torch.optim.Adadelta, step ``t``. ``states``: (square_avg, acc_delta)."""
    square_avg, acc_delta = states
    for name in list(parameters):
        key = "d" + name
        g = signed_grad(grads[key], parameters[name], weight_decay, maximize)
        square_avg[key] = rho * square_avg[key] + (1 - rho) * g * g
        delta = np.sqrt(acc_delta[key] + eps) / np.sqrt(square_avg[key] + eps) * g
        acc_delta[key] = rho * acc_delta[key] + (1 - rho) * delta * delta
        parameters[name] = parameters[name] - lr * delta
    return parameters, states
