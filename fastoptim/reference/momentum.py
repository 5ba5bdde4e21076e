"""Momentum, the course's way, in plain numpy: the specification the kernels are tested against."""

import numpy as np


def initialize_velocity(parameters):
    v = {}
    for name in parameters:
        v["d" + name] = np.zeros_like(parameters[name])
    return v


def update_parameters_with_momentum(parameters, grads, v, beta, learning_rate):
    for name in list(parameters):
        v["d" + name] = beta * v["d" + name] + (1 - beta) * grads["d" + name]
        parameters[name] = parameters[name] - learning_rate * v["d" + name]
    return parameters, v
