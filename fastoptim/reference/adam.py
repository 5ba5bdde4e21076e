"""Adam, the course's way, in plain numpy: the specification the kernels are tested against.

The update divides by the square root of the bias-corrected second moment ``s_corrected``.
"""

import numpy as np


def initialize_adam(parameters):
    v = {}
    s = {}
    for name in parameters:
        v["d" + name] = np.zeros_like(parameters[name])
        s["d" + name] = np.zeros_like(parameters[name])
    return v, s


def update_parameters_with_adam(
    parameters, grads, v, s, t, learning_rate=0.01, beta1=0.9, beta2=0.999, epsilon=1e-8
):
    v_corrected = {}
    s_corrected = {}
    for name in list(parameters):
        key = "d" + name
        v[key] = beta1 * v[key] + (1 - beta1) * grads[key]
        v_corrected[key] = v[key] / (1 - beta1**t)
        s[key] = beta2 * s[key] + (1 - beta2) * grads[key] ** 2
        s_corrected[key] = s[key] / (1 - beta2**t)
        parameters[name] = parameters[name] - learning_rate * v_corrected[key] / (
            np.sqrt(s_corrected[key]) + epsilon
        )
    return parameters, v, s
