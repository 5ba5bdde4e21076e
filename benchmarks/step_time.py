"""time_: one optimizer step: flat buffer (with and without the NaN/Inf check) vs course
drop-ins on dicts vs the numpy reference."""

from .common import ALGORITHMS, ready


class Step:
    params = (ALGORITHMS, [100_000, 1_000_000, 10_000_000], ["float32", "float64"])
    param_names = ("algorithm", "elements", "dtype")
    timeout = 240

    def setup(self, algorithm, n_elements, dtype):
        self.flat = ready("flat", algorithm, n_elements, dtype)
        self.flat_checked = ready("flat_checked", algorithm, n_elements, dtype)
        self.course = ready("course_dicts", algorithm, n_elements, dtype)
        self.reference = ready("reference", algorithm, n_elements, dtype)

    def time_flat(self, algorithm, n_elements, dtype):
        self.flat.step()

    def time_flat_nonfinite_check(self, algorithm, n_elements, dtype):
        """The default object API: gradients checked for NaN/Inf before the update."""
        self.flat_checked.step()

    def time_course_dicts(self, algorithm, n_elements, dtype):
        self.course.step()

    def time_reference(self, algorithm, n_elements, dtype):
        self.reference.step()
