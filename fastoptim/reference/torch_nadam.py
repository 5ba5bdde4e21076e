"""torch.optim.NAdam in plain numpy, one layer at a time, as torch's documentation writes it."""

import numpy as np

from fastoptim.reference.torch_common import adam_moments


def momentum_products(beta1, momentum_decay, t):
    """``(mu_t, mu_{t+1}, prod_{s<=t} mu_s)``; the product in float32 with each mu rounded to
    float32 first, as torch keeps ``state['mu_product']`` (a float32 tensor)."""

    def mu(s):
        return beta1 * (1.0 - 0.5 * 0.96 ** (s * momentum_decay))

    product = np.float32(1.0)
    for s in range(1, t + 1):
        product = product * np.float32(mu(s))
    return mu(t), mu(t + 1), float(product)


def update_parameters_with_torch_nadam(
    parameters, grads, states, t, lr, betas, eps, weight_decay, momentum_decay,
    decoupled_weight_decay, maximize,
):  # fmt: skip
    """torch.optim.NAdam, step ``t``. ``states``: (exp_avg, exp_avg_sq)."""
    beta1, beta2 = betas
    exp_avg, exp_avg_sq = states
    mu, mu_next, product = momentum_products(beta1, momentum_decay, t)
    for name in list(parameters):
        key = "d" + name
        param, g = adam_moments(
            parameters[name], grads[key], exp_avg, exp_avg_sq, key, betas, lr, weight_decay,
            decoupled_weight_decay, maximize,
        )  # fmt: skip
        denominator = np.sqrt(exp_avg_sq[key] / (1 - beta2**t)) + eps
        parameters[name] = (
            param
            - lr * (1 - mu) / (1 - product) * g / denominator
            - lr * mu_next / (1 - product * mu_next) * exp_avg[key] / denominator
        )
    return parameters, states
