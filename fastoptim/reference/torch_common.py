"""What torch's update rules share, in plain numpy: zero state dicts keyed ``'d' + name``,
the gradient with maximize's sign and L2 weight decay, and Adam's moments."""

import numpy as np


def initialize_state(parameters, count):
    """``count`` state dicts of zeros, each keyed ``'d' + name``."""
    return tuple(
        {"d" + name: np.zeros_like(p) for name, p in parameters.items()} for _ in range(count)
    )


def signed_grad(grad, param, weight_decay, maximize):
    """``-grad`` with maximize, plus ``weight_decay * param`` when that is not 0."""
    g = -grad if maximize else grad
    if weight_decay != 0:
        g = g + weight_decay * param
    return g


def adam_moments(param, grad, exp_avg, exp_avg_sq, key, betas, lr, weight_decay, decoupled,
                 maximize):  # fmt: skip
    """Adam's (and NAdam's, RAdam's) start of a step: the parameter after decoupled decay
    (AdamW: ``param * (1 - lr * weight_decay)``) and the gradient (L2 decay otherwise);
    ``exp_avg[key]`` and ``exp_avg_sq[key]`` are rebound to the new moments."""
    beta1, beta2 = betas
    if decoupled:
        param = param * (1 - lr * weight_decay)
        g = signed_grad(grad, param, 0, maximize)
    else:
        g = signed_grad(grad, param, weight_decay, maximize)
    exp_avg[key] = beta1 * exp_avg[key] + (1 - beta1) * g
    exp_avg_sq[key] = beta2 * exp_avg_sq[key] + (1 - beta2) * g * g
    return param, g
