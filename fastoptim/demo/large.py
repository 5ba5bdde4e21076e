"""The demo's second part: a network with millions of parameters, trained through the same
course functions, where the update is a large share of each step."""

from __future__ import annotations

import statistics

import numpy as np

from fastoptim.demo.train import Result, train

# LINEAR(1024) -> RELU -> LINEAR(1024) -> RELU -> LINEAR(1) -> SIGMOID: 2.1 million parameters
LARGE_DIMS = [1024, 1024, 1024, 1]
LARGE_SAMPLES = 256  # 4 mini-batches of 64 an epoch
LARGE_LEARNING_RATE = {"gd": 0.05, "momentum": 0.05, "adam": 0.0005}


def large_data(n_samples: int = LARGE_SAMPLES, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Generated inputs (1024 features) and 0/1 labels from a random linear teacher."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((LARGE_DIMS[0], n_samples))
    teacher = rng.standard_normal((1, LARGE_DIMS[0]))
    return X, (teacher @ X > 0).astype(np.float64)


def run_large(optimizers, implementations, epochs: int, on_epoch=None) -> list[Result]:
    """Train the large network with every optimizer and implementation, on the course's
    plain dicts (fastoptim: one import changed)."""
    X, Y = large_data()
    rates = LARGE_LEARNING_RATE
    return [
        train(X, Y, name, how, epochs, on_epoch, LARGE_DIMS, rates[name], flat=False)
        for name in optimizers
        for how in implementations
    ]


def format_large_table(results: list[Result], epochs: int) -> str:
    """Update time, whole-step time and the update's share, with the step's speed-up."""
    n_parameters = sum(a * b + a for a, b in zip(LARGE_DIMS[1:], LARGE_DIMS[:-1], strict=True))
    reference_step = {
        r.optimizer: statistics.median(r.step_seconds)
        for r in results
        if r.implementation == "reference"
    }
    lines = [
        f"Large network {LARGE_DIMS} ({n_parameters:,} parameters, float64), generated data, "
        f"mini-batches of 64, {epochs} epochs ({len(results[0].step_seconds)} steps each), "
        "plain dicts as in the course code: fastoptim is one changed import.",
        "",
        f"{'optimizer':<10} {'implementation':<15} {'final loss':>11} {'update ms':>10} "
        f"{'step ms':>8} {'update share':>13} {'step speed-up':>14}",
    ]
    for r in results:
        update, step = statistics.median(r.update_seconds), statistics.median(r.step_seconds)
        lines.append(
            f"{r.optimizer:<10} {r.implementation:<15} {r.cost:>11.6f} {update * 1e3:>10.2f} "
            f"{step * 1e3:>8.2f} {update / step:>12.0%} {reference_step[r.optimizer] / step:>13.2f}x"
        )
    return "\n".join(lines)
