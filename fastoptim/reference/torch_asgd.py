"""torch.optim.ASGD in plain numpy, one layer at a time, as torch's for-loop writes it."""

import numpy as np

from fastoptim.reference.torch_common import signed_grad


def update_parameters_with_torch_asgd(
    parameters, grads, states, t, lr, lambd, alpha, t0, weight_decay, maximize
):
    """torch.optim.ASGD, step ``t`` at a constant ``lr``. ``states``: (ax,). torch saves
    ``eta`` and ``mu`` after each step as float32 tensors, from that step's count; step 1
    uses ``eta = lr`` and ``mu = 1``."""
    (ax,) = states
    previous = t - 1
    eta = float(np.float32(lr / (1 + lambd * lr * previous) ** alpha))
    mu = 1.0 if previous == 0 else float(np.float32(1 / max(1, previous - t0)))
    for name in list(parameters):
        key = "d" + name
        g = signed_grad(grads[key], parameters[name], weight_decay, maximize)
        param = parameters[name] * (1 - lambd * eta) - eta * g
        parameters[name] = param
        ax[key] = param.copy() if mu == 1 else ax[key] + (param - ax[key]) * mu
    return parameters, states
