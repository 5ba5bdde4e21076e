"""Gradient descent, the course's way, in plain numpy."""


def update_parameters_with_gd(parameters, grads, learning_rate):
    for name in list(parameters):
        parameters[name] = parameters[name] - learning_rate * grads["d" + name]
    return parameters
