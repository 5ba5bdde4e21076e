"""torch.optim.SGD in plain numpy, one layer at a time, as torch's documentation writes it."""

import numpy as np

from fastoptim.reference.torch_common import signed_grad


def update_parameters_with_torch_sgd(
    parameters, grads, states, t, lr, momentum, dampening, weight_decay, nesterov, maximize
):
    """torch.optim.SGD, step ``t``: the momentum buffer is the gradient itself at t = 1."""
    (buffers,) = states
    for name in list(parameters):
        key = "d" + name
        g = signed_grad(grads[key], parameters[name], weight_decay, maximize)
        if momentum != 0:
            if t == 1:
                buffers[key] = np.array(g, copy=True)
            else:
                buffers[key] = momentum * buffers[key] + (1 - dampening) * g
            g = g + momentum * buffers[key] if nesterov else buffers[key]
        parameters[name] = parameters[name] - lr * g
    return parameters, states
