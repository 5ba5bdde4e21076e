"""The demo trains through fastoptim and through the reference and gets the same numbers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fastoptim import demo


def assert_same_training(results, steps: int) -> dict:
    """Every optimizer through both implementations, the same steps and final cost."""
    by_key = {(r.optimizer, r.implementation): r for r in results}
    assert set(by_key) == {(o, i) for o in demo.OPTIMIZERS for i in demo.IMPLEMENTATIONS}
    for optimizer in demo.OPTIMIZERS:
        fast, ref = by_key[optimizer, "fastoptim"], by_key[optimizer, "reference"]
        assert len(fast.step_seconds) == len(ref.step_seconds) == steps
        assert fast.cost == pytest.approx(ref.cost, rel=1e-10), optimizer
    return by_key


def test_fastoptim_and_reference_train_to_the_same_numbers():
    by_key = assert_same_training(demo.run(epochs=60, progress=False), 60 * 5)
    for optimizer in demo.OPTIMIZERS:
        assert by_key[optimizer, "fastoptim"].accuracy == by_key[optimizer, "reference"].accuracy
    assert by_key["adam", "fastoptim"].cost < by_key["gd", "fastoptim"].cost  # Adam learns faster


SHORT_RUN = ("--epochs", "20", "--threads", "1", "--large-epochs", "1")


def test_the_command_prints_the_table():
    completed = subprocess.run(
        [sys.executable, "-m", "fastoptim", "demo", *SHORT_RUN],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = completed.stdout.splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["gd"], ["momentum"], ["adam"])]
    pairs = [(o, i) for o in demo.OPTIMIZERS for i in demo.IMPLEMENTATIONS]
    assert [(row[0], row[1]) for row in rows] == pairs + pairs  # the course, then the large one
    assert all(row[-1].endswith("x") and row[-2].endswith("x") for row in rows[: len(pairs)])
    assert "Large network [1024, 1024, 1024, 1]" in completed.stdout


def test_the_large_network_trains_to_the_same_numbers_through_both():
    results = demo.run_large(epochs=1, progress=False)
    assert_same_training(results, 4)
    table = demo.format_large_table(results, 1)
    assert "2,100,225 parameters" in table
    rows = [line.split() for line in table.splitlines() if line.split()[:1] in (["gd"], ["adam"])]
    assert len(rows) == 4 and all(row[-2].endswith("%") and row[-1].endswith("x") for row in rows)
