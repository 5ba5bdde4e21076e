"""torch.optim.Adafactor in plain numpy, one layer at a time, as torch's for-loop writes it."""

import math

import numpy as np


def initialize_adafactor(parameters):
    """(row_var, col_var, variance) keyed ``'d' + name``, each only for the layers that
    keep it: the row and column factors for two or more dimensions, else the variance."""
    row_var, col_var, variance = {}, {}, {}
    for name, p in parameters.items():
        if p.ndim >= 2:
            row_var["d" + name] = np.zeros((*p.shape[:-1], 1), dtype=p.dtype)
            col_var["d" + name] = np.zeros((*p.shape[:-2], 1, p.shape[-1]), dtype=p.dtype)
        else:
            variance["d" + name] = np.zeros_like(p)
    return row_var, col_var, variance


def update_parameters_with_torch_adafactor(
    parameters, grads, states, t, lr, beta2_decay, eps, d, weight_decay, maximize
):
    """torch.optim.Adafactor, step ``t``."""
    row_var, col_var, variance = states
    for name in list(parameters):
        key = "d" + name
        param = parameters[name]
        g = -grads[key] if maximize else grads[key]
        eps1 = np.finfo(param.dtype).eps if eps[0] is None else eps[0]
        weight = t**beta2_decay
        rho = min(lr, 1 / math.sqrt(t))
        alpha = max(eps[1], np.linalg.norm(param) / math.sqrt(param.size)) * rho
        if weight_decay != 0:
            param = param * (1 - lr * weight_decay)
        if g.ndim >= 2:
            row_var[key] = row_var[key] + weight * (
                (g * g).mean(axis=-1, keepdims=True) - row_var[key]
            )
            col_var[key] = col_var[key] + weight * (
                (g * g).mean(axis=-2, keepdims=True) - col_var[key]
            )
            row_mean = np.maximum(row_var[key].mean(axis=-2, keepdims=True), eps1)
            estimate = (row_var[key] @ col_var[key]) / row_mean
        else:
            variance[key] = variance[key] + weight * (g * g - variance[key])
            estimate = variance[key]
        update = g / np.sqrt(np.maximum(estimate, eps1 * eps1))
        denom = max(1.0, np.linalg.norm(update) / (math.sqrt(update.size) * d))
        parameters[name] = param - alpha / denom * update
    return parameters, states
