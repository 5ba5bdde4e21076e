"""torch.optim.RMSprop in plain numpy, one layer at a time, as torch's documentation writes it."""

import numpy as np

from fastoptim.reference.torch_common import signed_grad


def update_parameters_with_torch_rmsprop(
    parameters, grads, states, t, lr, alpha, eps, weight_decay, momentum, centered, maximize
):
    """torch.optim.RMSprop, step ``t``. ``states``: (square_avg, [grad_avg], [momentum_buffer])."""
    square_avg, rest = states[0], list(states[1:])
    grad_avg = rest.pop(0) if centered else None
    buffers = rest.pop(0) if momentum != 0 else None
    for name in list(parameters):
        key = "d" + name
        g = signed_grad(grads[key], parameters[name], weight_decay, maximize)
        square_avg[key] = alpha * square_avg[key] + (1 - alpha) * g * g
        if centered:
            grad_avg[key] = grad_avg[key] + (1 - alpha) * (g - grad_avg[key])
            avg = np.sqrt(square_avg[key] - grad_avg[key] * grad_avg[key]) + eps
        else:
            avg = np.sqrt(square_avg[key]) + eps
        if momentum != 0:
            buffers[key] = momentum * buffers[key] + g / avg
            parameters[name] = parameters[name] - lr * buffers[key]
        else:
            parameters[name] = parameters[name] - lr * g / avg
    return parameters, states
