"""One Adam step: fastoptim's flat kernel against the plain-numpy reference."""

import numpy as np

import fastoptim
from fastoptim import reference


def _model(n_elements, dtype):
    rng = np.random.default_rng(0)
    rows = 1000
    parameters = {
        "W1": rng.standard_normal((rows, n_elements // rows - 1)).astype(dtype),
        "b1": np.zeros((rows, 1), dtype),
    }
    grads = {"d" + k: rng.standard_normal(v.shape).astype(dtype) for k, v in parameters.items()}
    return parameters, grads


class AdamStep:
    params = ([100_000, 1_000_000], ["float32", "float64"])
    param_names = ("elements", "dtype")

    def setup(self, n_elements, dtype):
        parameters, grads = _model(n_elements, dtype)
        self.flat = fastoptim.flatten(parameters)
        self.flat_grads = self.flat.zeros_like(prefix="d")
        for key, value in grads.items():
            self.flat_grads[key] = value
        self.optimizer = fastoptim.Adam(self.flat, lr=1e-3)
        self.optimizer.step(self.flat_grads)  # compile or load the kernel: never timed

        self.ref_parameters = {k: v.copy() for k, v in parameters.items()}
        self.ref_grads = grads
        self.ref_v, self.ref_s = reference.initialize_adam(self.ref_parameters)
        self.t = 1

    def time_fastoptim_flat(self, n_elements, dtype):
        self.optimizer.step(self.flat_grads)

    def time_reference(self, n_elements, dtype):
        self.t += 1
        reference.update_parameters_with_adam(
            self.ref_parameters, self.ref_grads, self.ref_v, self.ref_s, self.t, 1e-3
        )
