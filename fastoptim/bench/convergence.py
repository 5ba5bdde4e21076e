"""``python -m fastoptim bench --convergence``: does low-precision state train as well as
float32 state? Three problems (bench/convergence_problems.py), each with float32, bfloat16
(stochastic rounding), bfloat16 rounded to nearest (to show why it is not offered) and int8
state, three seeds each, then a small sweep of lr and beta2; a table and a PNG of the curves.

Pass, for a state against float32 on one problem: the mean final training loss (the mean of
the last tenth of the steps) within 1.02x of float32's mean or within float32's
seed-to-seed spread, and the mean held-out metric within float32's spread of its mean (or
better). A sweep run diverges when its final loss is not finite or not below its first.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from fastoptim.bench.convergence_problems import PROBLEMS, STATES, Run

SEEDS = (0, 1, 2)
SWEEP = [(lr_scale, beta2) for lr_scale in (0.3, 1.0, 3.0) for beta2 in (0.99, 0.999)]
HIGHER_IS_BETTER = {"demo network": True, "digits MLP": True, "char transformer": False}
METRIC = {
    "demo network": "held-out accuracy",
    "digits MLP": "held-out accuracy",
    "char transformer": "held-out bits/char",
}


def final_loss(run: Run) -> float:
    """The mean training loss over the last tenth of the steps (one batch is noisy)."""
    tail = run.losses[-max(1, len(run.losses) // 10) :]
    return statistics.fmean(tail)


def run_study(
    problems: Sequence[str] = tuple(PROBLEMS), sweep_problem: str = "digits", progress=None
) -> tuple[list[Run], list[Run]]:
    """Every problem x state x seed, then the sweep on ``sweep_problem`` (seed 0)."""
    runs, sweep = [], []
    for problem in problems:
        for state in STATES:
            for seed in SEEDS:
                runs.append(PROBLEMS[problem](state, seed))
                if progress:
                    progress(f"{problem} {state} seed {seed}")
    for state in STATES:
        for lr_scale, beta2 in SWEEP:
            sweep.append(PROBLEMS[sweep_problem](state, 0, lr_scale, beta2))
            if progress:
                progress(f"sweep {state} lr x{lr_scale} beta2 {beta2}")
    return runs, sweep


def verdicts(runs: Sequence[Run]) -> list[dict]:
    """Per problem and state: the mean and spread of the final loss and of the held-out
    metric over the seeds, and whether the state passes against float32."""
    rows = []
    for problem in dict.fromkeys(run.problem for run in runs):
        reference = [r for r in runs if r.problem == problem and r.state == "float32"]
        ref_loss = [final_loss(r) for r in reference]
        ref_metric = [r.heldout for r in reference]
        loss_spread = max(ref_loss) - min(ref_loss)
        metric_spread = max(ref_metric) - min(ref_metric)
        for state in STATES:
            chosen = [r for r in runs if r.problem == problem and r.state == state]
            losses = [final_loss(r) for r in chosen]
            metrics = [r.heldout for r in chosen]
            loss, metric = statistics.fmean(losses), statistics.fmean(metrics)
            gap = metric - statistics.fmean(ref_metric)
            if not HIGHER_IS_BETTER[problem]:
                gap = -gap
            loss_ok = loss <= 1.02 * statistics.fmean(ref_loss) or (
                abs(loss - statistics.fmean(ref_loss)) <= loss_spread
            )
            metric_ok = gap >= -metric_spread
            rows.append(
                {
                    "problem": problem,
                    "state": state,
                    "loss": loss,
                    "loss_spread": max(losses) - min(losses),
                    "loss_ratio": loss / statistics.fmean(ref_loss),
                    "metric": metric,
                    "metric_spread": max(metrics) - min(metrics),
                    "passes": all(math.isfinite(x) for x in losses) and loss_ok and metric_ok,
                }
            )
    return rows


def format_study(runs: Sequence[Run], sweep: Sequence[Run]) -> str:
    lines = [
        f"Convergence: {len(SEEDS)} seeds per state; final loss = mean of the last tenth of "
        "the steps; spread = max - min over the seeds. Pass: loss within 1.02x of float32's "
        "mean or its spread, and the held-out metric within float32's spread.",
        "",
        f"{'problem':<17} {'state':<17} {'final loss':>17} {'vs float32':>10} "
        f"{'held-out':>17} {'metric':<19} {'pass':>5}",
    ]
    for row in verdicts(runs):
        lines.append(
            f"{row['problem']:<17} {row['state']:<17} "
            f"{row['loss']:>9.4f} ± {row['loss_spread']:<6.4f}"
            f"{row['loss_ratio']:>9.3f}x "
            f"{row['metric']:>9.4f} ± {row['metric_spread']:<6.4f} "
            f"{METRIC[row['problem']]:<19} {'yes' if row['passes'] else 'NO':>5}"
        )
    if sweep:
        lines += [
            "",
            f"Sweep on {sweep[0].problem} (seed 0): final loss by lr scale and beta2 "
            "(DIVERGED: not finite, or not below the first loss)",
        ]
        lines.append(f"{'state':<17} " + " ".join(f"{f'x{s} b2={b}':>16}" for s, b in SWEEP))
        for state in STATES:
            cells = []
            for lr_scale, beta2 in SWEEP:
                (run,) = [
                    r
                    for r in sweep
                    if r.state == state and (r.lr_scale, r.beta2) == (lr_scale, beta2)
                ]
                loss = final_loss(run)
                diverged = not math.isfinite(loss) or loss >= run.losses[0]
                cells.append(f"{loss:>9.4f}{' DIVERGED' if diverged else '':>7}")
            lines.append(f"{state:<17} " + " ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def plot_study(runs: Sequence[Run], path: str) -> None:
    """The loss curves (mean over seeds, smoothed over 20 steps), one panel per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    problems = list(dict.fromkeys(run.problem for run in runs))
    figure, axes = plt.subplots(1, len(problems), figsize=(5 * len(problems), 4))
    for axis, problem in zip(np.atleast_1d(axes), problems, strict=True):
        for state in STATES:
            curves = np.array([r.losses for r in runs if r.problem == problem and r.state == state])
            mean = curves.mean(axis=0)
            window = min(20, len(mean))
            smooth = np.convolve(mean, np.ones(window) / window, mode="valid")
            axis.plot(np.arange(len(smooth)) + window, smooth, label=state)
        axis.set_title(problem)
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.set_yscale("log")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
