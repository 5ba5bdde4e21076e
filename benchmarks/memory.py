"""peakmem_ and track_: a step allocates nothing that grows with the model."""

import tracemalloc

from .common import COURSE_ALGORITHMS, ready


class StepMemory:
    params = (COURSE_ALGORITHMS, [1_000_000, 10_000_000])  # every kernel allocates alike
    param_names = ("algorithm", "elements")

    def setup(self, algorithm, n_elements):
        self.flat = ready("flat", algorithm, n_elements)

    def peakmem_step(self, algorithm, n_elements):
        # the process peak: the buffers themselves plus whatever one step adds
        self.flat.step()

    def track_step_extra_bytes(self, algorithm, n_elements):
        """Bytes numpy and Python allocate during one step, at their peak."""
        tracemalloc.start()
        try:
            self.flat.step()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    track_step_extra_bytes.unit = "bytes"
