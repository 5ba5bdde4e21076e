"""Models and optimizers shared by the asv benchmarks."""

import numpy as np

import fastoptim

ALGORITHMS = ("adam", "momentum")
# elements read + written per element by one step
TRAFFIC = {"adam": 7, "momentum": 5}


def course_inputs(n_elements, dtype):
    """A weight of n - 1,000 elements and a 1,000-element bias, with gradients."""
    rng = np.random.default_rng(0)
    bias = min(1000, n_elements // 10)
    parameters = {
        "W1": rng.standard_normal(n_elements - bias, dtype=np.float32).astype(dtype),
        "b1": np.zeros(bias, dtype),
    }
    grads = {
        "d" + k: (rng.standard_normal(v.shape) * 1e-2).astype(dtype) for k, v in parameters.items()
    }
    return parameters, grads


def flat_optimizer(algorithm, n_elements, dtype):
    """An optimizer over a flat buffer and its flat gradients, warmed by one step."""
    parameters, grads = course_inputs(n_elements, dtype)
    params = fastoptim.flatten(parameters)
    flat_grads = params.zeros_like(prefix="d")
    for key, value in grads.items():
        flat_grads[key] = value
    if algorithm == "adam":
        optimizer = fastoptim.Adam(params, lr=1e-3)
    else:
        optimizer = fastoptim.Momentum(params, lr=1e-3, beta=0.9)
    optimizer.step(flat_grads)  # compile or load the kernel: never timed
    return optimizer, flat_grads


class CourseUpdate:
    """The course update of ``module`` (fastoptim or its reference) on plain dicts."""

    def __init__(self, module, algorithm, n_elements, dtype):
        self.module, self.algorithm = module, algorithm
        self.parameters, self.grads = course_inputs(n_elements, dtype)
        if algorithm == "adam":
            self.v, self.s = module.initialize_adam(self.parameters)
        else:
            self.v = module.initialize_velocity(self.parameters)
        self.t = 0
        self.step()

    def step(self):
        self.t += 1
        if self.algorithm == "adam":
            self.module.update_parameters_with_adam(
                self.parameters, self.grads, self.v, self.s, self.t, 1e-3
            )
        else:
            self.module.update_parameters_with_momentum(
                self.parameters, self.grads, self.v, 0.9, 1e-3
            )
