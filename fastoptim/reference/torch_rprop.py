"""torch.optim.Rprop in plain numpy, one layer at a time, as torch's documentation writes it."""

import numpy as np


def update_parameters_with_torch_rprop(
    parameters, grads, states, t, lr, etas, step_sizes, maximize
):
    """torch.optim.Rprop, step ``t``. ``states``: (prev, step_size); the step sizes start at
    ``lr`` on the first step."""
    etaminus, etaplus = etas
    prev, step_size = states
    for name in list(parameters):
        key = "d" + name
        g = -grads[key] if maximize else grads[key]
        sizes = np.full_like(g, lr) if t == 1 else step_size[key]
        product = np.sign(g * prev[key])
        factor = np.where(product > 0, etaplus, np.where(product < 0, etaminus, 1.0))
        step_size[key] = np.clip(sizes * factor, step_sizes[0], step_sizes[1])
        g = np.where(product < 0, 0.0, g)
        parameters[name] = parameters[name] - np.sign(g) * step_size[key]
        prev[key] = g
    return parameters, states
