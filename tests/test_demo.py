"""The demo trains through fastoptim and through the reference and gets the same numbers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fastoptim import demo


def test_fastoptim_and_reference_train_to_the_same_numbers():
    results = demo.run(epochs=60, progress=False)
    by_key = {(r.optimizer, r.implementation): r for r in results}
    assert set(by_key) == {(o, i) for o in demo.OPTIMIZERS for i in demo.IMPLEMENTATIONS}
    for optimizer in demo.OPTIMIZERS:
        fast, ref = by_key[optimizer, "fastoptim"], by_key[optimizer, "reference"]
        assert len(fast.update_seconds) == len(ref.update_seconds) == 60 * 5
        assert fast.cost == pytest.approx(ref.cost, rel=1e-10), optimizer
        assert fast.accuracy == ref.accuracy, optimizer
    assert by_key["adam", "fastoptim"].cost < by_key["gd", "fastoptim"].cost  # Adam learns faster


def test_the_command_prints_the_table():
    completed = subprocess.run(
        [sys.executable, "-m", "fastoptim", "demo", "--epochs", "20", "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = completed.stdout.splitlines()
    rows = [line.split() for line in lines if line.split()[:1] in (["gd"], ["momentum"], ["adam"])]
    assert [(row[0], row[1]) for row in rows] == [
        (o, i) for o in demo.OPTIMIZERS for i in demo.IMPLEMENTATIONS
    ]
    assert all(row[-1].endswith("x") for row in rows)
