"""LAMB in plain numpy, one layer at a time, as optax.lamb chains it: Adam's bias-corrected
direction (``scale_by_adam``, eps_root 0), plus ``weight_decay * p``
(``add_decayed_weights``), times each layer's trust ratio ``||p|| / ||u||``, 1 where either
norm is 0 (``scale_by_trust_ratio``), times ``-lr``."""

import numpy as np

from fastoptim.reference.torch_common import adam_moments


def update_parameters_with_lamb(parameters, grads, states, t, lr, betas, eps, weight_decay,
                                maximize):  # fmt: skip
    """One LAMB step at step ``t`` (from 1). ``states``: ``(exp_avg, exp_avg_sq)``, keyed
    ``'d' + name``."""
    beta1, beta2 = betas
    exp_avg, exp_avg_sq = states
    for name in list(parameters):
        key = "d" + name
        p = parameters[name]
        adam_moments(p, grads[key], exp_avg, exp_avg_sq, key, betas, lr, 0, False, maximize)
        m_hat = exp_avg[key] / (1 - beta1**t)
        v_hat = exp_avg_sq[key] / (1 - beta2**t)
        u = m_hat / (np.sqrt(v_hat) + eps) + weight_decay * p
        p_norm, u_norm = np.linalg.norm(p), np.linalg.norm(u)
        ratio = 1.0 if p_norm == 0 or u_norm == 0 else p_norm / u_norm
        parameters[name] = p - lr * ratio * u
    return parameters, states
