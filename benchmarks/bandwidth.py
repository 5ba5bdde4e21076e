"""track_: achieved GB/s and % of the roof kernel; compiled signature count."""

import statistics
import time

import numpy as np

import fastoptim
from fastoptim import kernels

from .common import ALGORITHMS, TRAFFIC, flat_optimizer


def _median_seconds(step, repeats=15):
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


class Bandwidth:
    params = (ALGORITHMS, [1_000_000, 10_000_000])
    param_names = ("algorithm", "elements")

    def setup(self, algorithm, n_elements):
        self.optimizer, self.grads = flat_optimizer(algorithm, n_elements, "float32")
        roof = kernels.roof.adam_roof if algorithm == "adam" else kernels.roof.momentum_roof
        arrays = 2 + roof.n_state  # param, grad and the state buffers
        segment = [tuple(self.optimizer.params.buffer.copy() for _ in range(arrays))]
        self.roof_step = lambda: roof.run(segment, ())
        self.roof_step()
        self.bytes = TRAFFIC[algorithm] * n_elements * 4

    def track_gb_per_s(self, algorithm, n_elements):
        return self.bytes / _median_seconds(lambda: self.optimizer.step(self.grads)) / 1e9

    track_gb_per_s.unit = "GB/s"

    def track_percent_of_roof(self, algorithm, n_elements):
        step = _median_seconds(lambda: self.optimizer.step(self.grads))
        return 100 * _median_seconds(self.roof_step) / step

    track_percent_of_roof.unit = "%"


def track_signatures_per_variant():
    """Most signatures compiled by any kernel variant after mixed scalar and array kinds (1)."""
    params = fastoptim.flatten({"W1": np.ones(10, np.float32)})
    grads = params.zeros_like(prefix="d")
    optimizer = fastoptim.Adam(params, lr=1)
    for lr in (1, 0.5, np.float64(0.1), np.float32(0.1)):
        optimizer.lr = lr
        optimizer.step(grads)
        optimizer.step({"dW1": np.ones(10, np.float32)[::-1]})
    return max(len(d.signatures) for d in kernels.adam.compiled_variants().values())
