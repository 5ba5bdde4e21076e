"""Interleaved timing: every contender steps once per round, so a noisy moment on a shared
machine hits all of them alike; medians of single steps are reported.

Before its timed step each contender waits ``settle_seconds`` and then takes one untimed
step. OpenMP worker threads (Numba's, torch's, DeepSpeed's) keep spinning for about 10 ms
after a parallel region; on a 2-core machine a pool left spinning by one contender would
take a core from the next. After the pause no other contender's threads are busy, and the
untimed step wakes the contender's own threads and warms its code and data, so the timed
step is its steady state, as in a loop of steps."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastoptim.bench.contenders import Contender
from fastoptim.bench.problems import Problem


@dataclass
class Timing:
    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.median, self.median
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return q1, q3


def measure(
    problem: Problem,
    contenders: list[Contender],
    budget_seconds: float,
    rounds: tuple[int, int] = (5, 300),
    settle_seconds: float = 0.015,
    on_round: Callable[[int, int], None] | None = None,
) -> list[Timing]:
    """Time ``contenders`` on ``problem`` in interleaved rounds within about ``budget_seconds``.

    Each contender is set up and stepped once untimed first (JIT compilation, cache loads
    and lazily allocated state are never timed). The number of rounds is what fits in the
    budget (pauses included), at least ``rounds[0]`` and at most ``rounds[1]``.
    """
    parameters, grads = problem.inputs()
    for contender in contenders:
        contender.setup(problem, parameters, grads)
        contender.step()
    del parameters, grads
    timings = [Timing(c.name) for c in contenders]
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection in the middle of one contender's step is noise
    try:
        first_round = _one_round(contenders, timings, settle_seconds)
        n_rounds = int(min(max(budget_seconds / max(first_round, 1e-9), rounds[0]), rounds[1]))
        for done in range(1, n_rounds):
            _one_round(contenders, timings, settle_seconds, shift=done)
            if on_round is not None:
                on_round(done, n_rounds)
    finally:
        if gc_was_enabled:
            gc.enable()
        for contender in contenders:
            contender.teardown()
        gc.collect()
    return timings


def _one_round(
    contenders: list[Contender], timings: list[Timing], settle_seconds: float, shift: int = 0
) -> float:
    """Time one step of every contender, starting with contender ``shift``: rotating the start
    from round to round means no contender always runs right after the same other one
    (whose caches and branch history it would inherit). Returns the round's wall time,
    pauses included."""
    round_start = time.perf_counter()
    order = list(zip(contenders, timings, strict=True))
    for contender, timing in order[shift % len(order) :] + order[: shift % len(order)]:
        time.sleep(settle_seconds)
        contender.step()
        start = time.perf_counter()
        contender.step()
        timing.samples.append(time.perf_counter() - start)
    return time.perf_counter() - round_start
