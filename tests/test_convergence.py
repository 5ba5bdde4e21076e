"""The convergence study's verdicts (bench --convergence), on made-up runs: a state passes
against float32 within 1.02x of its loss or its seed spread, and with a held-out metric
within float32's spread; a worse one fails. (The study itself trains for minutes: by hand.)"""

from __future__ import annotations

from fastoptim.bench.convergence import SEEDS, format_study, verdicts
from fastoptim.bench.convergence_problems import STATES, Run


def runs(losses: dict[str, list[float]], metrics: dict[str, list[float]]) -> list[Run]:
    made = []
    for state in STATES:
        for seed in SEEDS:
            loss, metric = losses[state][seed], metrics[state][seed]
            made.append(Run("digits MLP", state, seed, 1.0, 0.999, [1.0] * 9 + [loss], metric))
    return made


def test_a_state_passes_within_the_float32_spread_and_fails_beyond_it():
    reference = [0.10, 0.11, 0.12]
    losses = {
        "float32": reference,
        "bfloat16": [0.101, 0.111, 0.121],  # 1.01x
        "bfloat16-nearest": [0.14, 0.15, 0.16],  # 1.36x and beyond the spread
        "int8": [0.10, 0.11, 0.12],
    }
    metrics = {s: [0.98, 0.97, 0.975] for s in STATES}
    metrics["int8"] = [0.90, 0.91, 0.92]  # held-out accuracy beyond float32's spread
    passes = {row["state"]: row["passes"] for row in verdicts(runs(losses, metrics))}
    assert passes == {
        "float32": True,
        "bfloat16": True,
        "bfloat16-nearest": False,
        "int8": False,
    }
    table = format_study(runs(losses, metrics), [])
    assert table.count(" NO") == 2 and "held-out accuracy" in table
