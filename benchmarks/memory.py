"""peakmem_ and track_: a step allocates nothing that grows with the model."""

import tracemalloc

from .common import ALGORITHMS, flat_optimizer


class StepMemory:
    params = (ALGORITHMS, [1_000_000, 10_000_000])
    param_names = ("algorithm", "elements")

    def setup(self, algorithm, n_elements):
        self.optimizer, self.grads = flat_optimizer(algorithm, n_elements, "float32")

    def peakmem_step(self, algorithm, n_elements):
        # the process peak: the buffers themselves plus whatever one step adds
        self.optimizer.step(self.grads)

    def track_step_extra_bytes(self, algorithm, n_elements):
        """Bytes numpy and Python allocate during one step, at their peak."""
        tracemalloc.start()
        try:
            self.optimizer.step(self.grads)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    track_step_extra_bytes.unit = "bytes"
