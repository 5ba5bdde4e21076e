"""The asv benchmarks reuse the bench command's models and contenders; the hand-run reports
share their timing."""

import statistics
import time
from collections.abc import Callable

import numpy as np

import fastoptim
from fastoptim.bench.algorithms import ALGORITHMS as BENCH_ALGORITHMS
from fastoptim.bench.contenders import (
    CourseDicts,
    FastoptimFlat,
    FastoptimGuarded,
    Reference,
    Roof,
)
from fastoptim.bench.problems import Problem, model_shapes

ALGORITHMS = tuple(BENCH_ALGORITHMS)
COURSE_ALGORITHMS = tuple(name for name, spec in BENCH_ALGORITHMS.items() if spec.course)
CONTENDERS = {
    "flat": FastoptimFlat,
    "flat_checked": FastoptimGuarded,
    "course_dicts": CourseDicts,
    "reference": Reference,
    "roof": Roof,
}


def problem(algorithm, n_elements, dtype="float32", state_dtype=None):
    """A weight of n - 1,000 elements and a 1,000-element bias (see fastoptim.bench)."""
    model = str(n_elements)
    threads = fastoptim.get_num_threads()
    shapes = model_shapes(model)
    return Problem(algorithm, model, shapes, np.dtype(dtype), threads, state_dtype)


def ready(kind, algorithm, n_elements, dtype="float32", state_dtype=None):
    """A contender set up and stepped once: the JIT is compiled or loaded, never timed."""
    this_problem = problem(algorithm, n_elements, dtype, state_dtype)
    contender = CONTENDERS[kind]()
    contender.setup(this_problem, *this_problem.inputs())
    contender.step()
    return contender


def interleaved_medians(steps: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Each step run twice (compiled, warmed), then once per round, in turn: the median
    milliseconds of each (the machine's noise falls on every contender alike)."""
    for step in steps.values():
        step()
        step()
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(rounds):
        for label, step in steps.items():
            start = time.perf_counter()
            step()
            times[label].append((time.perf_counter() - start) * 1e3)
    return {label: statistics.median(values) for label, values in times.items()}
