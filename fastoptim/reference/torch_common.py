"""What torch's update rules share, in plain numpy: zero state dicts keyed ``'d' + name``
and the gradient with maximize's sign and L2 weight decay."""

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
