"""Lion in plain numpy, one layer at a time, as lion-pytorch (google/automl) writes it:
``c = b1*m + (1-b1)*g;  p = p*(1 - lr*wd) - lr*sign(c);  m = b2*m + (1-b2)*g``."""

import numpy as np

from fastoptim.reference.torch_common import signed_grad


def update_parameters_with_lion(parameters, grads, states, t, lr, betas, weight_decay, maximize):
    """One Lion step (``t`` is not used: Lion has no bias correction). ``states``:
    ``(exp_avg,)``, keyed ``'d' + name``."""
    beta1, beta2 = betas
    (exp_avg,) = states
    for name in list(parameters):
        key = "d" + name
        g = signed_grad(grads[key], parameters[name], 0, maximize)
        update = np.sign(beta1 * exp_avg[key] + (1 - beta1) * g)
        parameters[name] = parameters[name] * (1 - lr * weight_decay) - lr * update
        exp_avg[key] = beta2 * exp_avg[key] + (1 - beta2) * g
    return parameters, states
