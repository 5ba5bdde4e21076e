"""track_: achieved GB/s and % of the roof kernel; compiled signature count."""

import statistics
import time

import numpy as np

import fastoptim
from fastoptim import kernels

from .common import ALGORITHMS, problem, ready


def _median_seconds(step, repeats=15):
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


class Bandwidth:
    params = (ALGORITHMS, [10_000_000])  # out of cache: the roof is memory bandwidth
    param_names = ("algorithm", "elements")

    def setup(self, algorithm, n_elements):
        self.flat = ready("flat", algorithm, n_elements)
        self.roof = ready("roof", algorithm, n_elements)
        self.bytes = problem(algorithm, n_elements).bytes_per_step

    def track_gb_per_s(self, algorithm, n_elements):
        return self.bytes / _median_seconds(self.flat.step) / 1e9

    track_gb_per_s.unit = "GB/s"

    def track_percent_of_roof(self, algorithm, n_elements):
        return 100 * _median_seconds(self.roof.step) / _median_seconds(self.flat.step)

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
    return max(len(d.signatures) for d in kernels.adam_update.compiled_variants().values())
