"""``python -m fastoptim bench``: fastoptim against the numpy reference, the roof, torch.optim
and DeepSpeedCPUAdam, interleaved in one run."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastoptim import threads
from fastoptim.bench.contenders import all_contenders
from fastoptim.bench.problems import Problem, model_shapes
from fastoptim.bench.report import format_problem, rows_for
from fastoptim.bench.timing import measure
from fastoptim.progress import ProgressBar

DEFAULT_MODELS = ("1e5", "1e6", "1e7", "1e8", "10000x1000", "course")


def run(
    algorithms: list[str],
    models: list[str],
    dtype: str,
    thread_counts: list[int],
    budget_seconds: float,
    settle_seconds: float = 0.015,
    only: list[str] | None = None,
    progress: bool = True,
    echo=print,
    state_dtype: str | None = None,
) -> list[dict[str, Any]]:
    """Measure every (algorithm, model, thread count); print each table as it completes."""
    problems = [
        Problem(algorithm, model, model_shapes(model), np.dtype(dtype), n_threads, state_dtype)
        for n_threads in thread_counts
        for algorithm in algorithms
        for model in models
    ]
    bar = ProgressBar(len(problems) * 100) if progress else None
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for index, problem in enumerate(problems):
        contenders = []
        for contender in all_contenders():
            if only and contender.name not in only and contender.name != "roof":
                continue
            reason = contender.available(problem)
            if reason is None:
                contenders.append(contender)
            else:
                skipped.setdefault(contender.name, reason)
        label = f"{problem.algorithm} {problem.model} ({problem.threads} thr)"

        def on_round(done: int, total: int, index: int = index, label: str = label) -> None:
            if bar is not None:
                bar.done = index * 100
                bar.advance(label, amount=100 * done // total)

        with threads.num_threads(problem.threads):
            timings = measure(
                problem,
                contenders,
                budget_seconds,
                settle_seconds=settle_seconds,
                on_round=on_round,
            )
        if bar is not None:
            bar.done = (index + 1) * 100 - 1
            bar.advance(label)
            bar.close()
        problem_rows = rows_for(problem, timings, len(timings[0].samples))
        echo(format_problem(problem_rows) + "\n")
        rows.extend(problem_rows)
    for name, reason in skipped.items():
        echo(f"skipped {name}: {reason}")
    return rows
