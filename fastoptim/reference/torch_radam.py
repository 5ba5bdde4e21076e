"""torch.optim.RAdam in plain numpy, one layer at a time, as torch's documentation writes it."""

import numpy as np

from fastoptim.reference.torch_common import adam_moments


def update_parameters_with_torch_radam(
    parameters, grads, states, t, lr, betas, eps, weight_decay, decoupled_weight_decay, maximize
):
    """torch.optim.RAdam, step ``t``. ``states``: (exp_avg, exp_avg_sq)."""
    beta1, beta2 = betas
    exp_avg, exp_avg_sq = states
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    for name in list(parameters):
        key = "d" + name
        param, _ = adam_moments(
            parameters[name], grads[key], exp_avg, exp_avg_sq, key, betas, lr, weight_decay,
            decoupled_weight_decay, maximize,
        )  # fmt: skip
        m_hat = exp_avg[key] / (1 - beta1**t)
        if rho_t > 5:
            rect = np.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            adaptive = np.sqrt(1 - beta2**t) / (np.sqrt(exp_avg_sq[key]) + eps)
            parameters[name] = param - lr * m_hat * rect * adaptive
        else:
            parameters[name] = param - lr * m_hat
    return parameters, states
