"""torch.optim.Adamax in plain numpy, one layer at a time, as torch's documentation writes it."""

import numpy as np

from fastoptim.reference.torch_common import signed_grad


def update_parameters_with_torch_adamax(
    parameters, grads, states, t, lr, betas, eps, weight_decay, maximize
):
    """torch.optim.Adamax, step ``t``. ``states``: (exp_avg, exp_inf)."""
    beta1, beta2 = betas
    exp_avg, exp_inf = states
    for name in list(parameters):
        key = "d" + name
        g = signed_grad(grads[key], parameters[name], weight_decay, maximize)
        exp_avg[key] = beta1 * exp_avg[key] + (1 - beta1) * g
        exp_inf[key] = np.maximum(beta2 * exp_inf[key], np.abs(g) + eps)
        parameters[name] = parameters[name] - lr / (1 - beta1**t) * exp_avg[key] / exp_inf[key]
    return parameters, states
