"""time_: one optimizer step of every algorithm on the flat buffer (with and without the
NaN/Inf check), and for the course algorithms the drop-ins on dicts and the numpy reference."""

from .common import ALGORITHMS, COURSE_ALGORITHMS, ready

SIZES = [100_000, 1_000_000, 10_000_000]
DTYPES = ["float32", "float64"]
PARAM_NAMES = ("algorithm", "elements", "dtype")


class Step:
    # float64 is timed for the course algorithms in CourseStep; here float32 keeps the suite short
    params = (ALGORITHMS, SIZES, ["float32"])
    param_names = PARAM_NAMES
    timeout = 240

    def setup(self, algorithm, n_elements, dtype):
        self.flat = ready("flat", algorithm, n_elements, dtype)
        self.flat_checked = ready("flat_checked", algorithm, n_elements, dtype)

    def time_flat(self, algorithm, n_elements, dtype):
        self.flat.step()

    def time_flat_nonfinite_check(self, algorithm, n_elements, dtype):
        """The default object API: gradients checked for NaN/Inf before the update."""
        self.flat_checked.step()


class CourseStep:
    params = (COURSE_ALGORITHMS, SIZES, DTYPES)
    param_names = PARAM_NAMES
    timeout = 240

    def setup(self, algorithm, n_elements, dtype):
        self.course = ready("course_dicts", algorithm, n_elements, dtype)
        self.reference = ready("reference", algorithm, n_elements, dtype)

    def time_course_dicts(self, algorithm, n_elements, dtype):
        self.course.step()

    def time_reference(self, algorithm, n_elements, dtype):
        self.reference.step()


class LowPrecisionStep:
    """A step with bfloat16 or int8 state (float32 parameters), and its roof (a kernel with
    the traffic of that state): two state buffers and one (each compiles its own loops, and
    CI runs the whole suite once)."""

    params = (["adam", "momentum"], [10_000_000], ["bfloat16", "int8"])
    param_names = ("algorithm", "elements", "state_dtype")
    timeout = 240

    def setup(self, algorithm, n_elements, state_dtype):
        self.flat = ready("flat", algorithm, n_elements, "float32", state_dtype)
        self.roof = ready("roof", algorithm, n_elements, "float32", state_dtype)

    def time_flat(self, algorithm, n_elements, state_dtype):
        self.flat.step()

    def time_roof(self, algorithm, n_elements, state_dtype):
        self.roof.step()
