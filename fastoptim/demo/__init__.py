"""``python -m fastoptim demo``: the course's optimization exercise, through fastoptim and
through the numpy reference, side by side."""

from __future__ import annotations

import statistics

from fastoptim.demo import large
from fastoptim.demo.data import two_moons
from fastoptim.demo.large import format_large_table
from fastoptim.demo.train import LAYER_DIMS, Result, train
from fastoptim.progress import ProgressBar

OPTIMIZERS = ("gd", "momentum", "adam")
IMPLEMENTATIONS = ("fastoptim", "reference")


def run(epochs: int = 2000, n_samples: int = 300, progress: bool = True) -> list[Result]:
    """Train every optimizer with every implementation; returns the results in that order."""
    X, Y = two_moons(n_samples)
    bar = ProgressBar(len(OPTIMIZERS) * len(IMPLEMENTATIONS) * epochs) if progress else None
    results = []
    for optimizer in OPTIMIZERS:
        for implementation in IMPLEMENTATIONS:
            label = f"{optimizer} / {implementation}"
            on_epoch = (lambda label=label: bar.advance(label)) if bar else None
            results.append(train(X, Y, optimizer, implementation, epochs, on_epoch))
    if bar:
        bar.close()
    return results


def run_large(epochs: int = 15, progress: bool = True) -> list[Result]:
    """The large network (``large.LARGE_DIMS``) with every optimizer and implementation."""
    steps = len(OPTIMIZERS) * len(IMPLEMENTATIONS) * epochs
    bar = ProgressBar(steps) if progress else None
    on_epoch = (lambda: bar.advance("large network")) if bar else None
    results = large.run_large(OPTIMIZERS, IMPLEMENTATIONS, epochs, on_epoch)
    if bar:
        bar.close()
    return results


def format_table(results: list[Result], epochs: int) -> str:
    """The results as a text table, with the update's and the whole step's speed-up over
    the reference."""
    medians = {
        (r.optimizer, r.implementation): (
            statistics.median(r.update_seconds),
            statistics.median(r.step_seconds),
        )
        for r in results
    }
    lines = [
        f"Two moons, network {LAYER_DIMS}, mini-batches of 64, {epochs} epochs "
        f"({len(results[0].update_seconds)} steps each). Times are medians over all steps; "
        "a step is forward, cost, backward and update.",
        "",
        f"{'optimizer':<10} {'implementation':<15} {'final loss':>11} {'accuracy':>9} "
        f"{'update us':>10} {'step us':>8} {'update speed-up':>16} {'step speed-up':>14}",
    ]
    for r in results:
        update, step = medians[r.optimizer, r.implementation]
        reference_update, reference_step = medians[r.optimizer, "reference"]
        lines.append(
            f"{r.optimizer:<10} {r.implementation:<15} {r.cost:>11.6f} {r.accuracy:>8.1%} "
            f"{update * 1e6:>10.1f} {step * 1e6:>8.1f} {reference_update / update:>15.2f}x "
            f"{reference_step / step:>13.2f}x"
        )
    return "\n".join(lines)


__all__ = [
    "IMPLEMENTATIONS",
    "OPTIMIZERS",
    "Result",
    "format_large_table",
    "format_table",
    "run",
    "run_large",
]
