"""torch.optim.Adam and AdamW in plain numpy, one layer at a time, as torch's documentation
writes them; states are dicts keyed ``'d' + name`` and entries are rebound to new arrays."""

import numpy as np

from fastoptim.reference.torch_common import adam_moments


def update_parameters_with_torch_adam(
    parameters, grads, states, t, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled
):
    """torch.optim.Adam (``decoupled=False``) or AdamW (``decoupled=True``), step ``t``."""
    beta1, beta2 = betas
    exp_avg, exp_avg_sq = states[0], states[1]
    for name in list(parameters):
        key = "d" + name
        param, _ = adam_moments(
            parameters[name], grads[key], exp_avg, exp_avg_sq, key, betas, lr, weight_decay,
            decoupled, maximize,
        )  # fmt: skip
        second = exp_avg_sq[key]
        if amsgrad:
            states[2][key] = np.maximum(states[2][key], exp_avg_sq[key])
            second = states[2][key]
        m_hat = exp_avg[key] / (1 - beta1**t)
        v_hat = second / (1 - beta2**t)
        parameters[name] = param - lr * m_hat / (np.sqrt(v_hat) + eps)
    return parameters, states
