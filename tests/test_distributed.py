"""fastoptim.distributed for real: mpiexec on localhost with 1, 2 and 3 ranks.

Each test launches tests/mpi_worker.py, whose ranks assert their own results; a launch
that fails or hangs fails the test. Needs the mpi extra (mpi4py and MPICH's mpiexec).
Tolerance for 3 ranks with reduce='mean' or a 3-way sum: MPI may add three gradients in
another order than one process does, one rounding (2**-53 relative) per element per step,
which 50 steps of these optimizers carry into the parameters far below 1e-12 of their size.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mpi4py")

WORKER = str(Path(__file__).with_name("mpi_worker.py"))
BESIDE_PYTHON = Path(sys.executable).with_name("mpiexec")
MPIEXEC = str(BESIDE_PYTHON) if BESIDE_PYTHON.exists() else shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'fastoptim[mpi]')")


def launch(ranks: int, *arguments: str, expect_failure: bool = False) -> dict | None:
    """Run one scenario on ``ranks`` processes; return rank 0's JSON report."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(sys.path),
        NUMBA_NUM_THREADS="1",  # ranks x threads must not exceed the two cores
        OMP_NUM_THREADS="1",
    )
    done = subprocess.run(
        [MPIEXEC, "-n", str(ranks), sys.executable, WORKER, *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    if expect_failure:
        assert done.returncode != 0
        return None
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_parity(report: dict, ranks: int) -> None:
    """On 2 ranks Adam, AdamW (with groups, and with clipping) and SGD with momentum, each
    with reduce sum and mean, bit-identical; on 1 and 3 ranks each algorithm once (3 ranks:
    within 1e-12, asserted by the ranks). State memory per rank about 1/ranks of one
    process's."""
    for key, result in report.items():
        if "state bytes" in key:
            assert len(result["ranks"]) == ranks
            assert max(result["ranks"]) < result["one process"] / ranks + 2 * 8192 * 8 * 2
        elif ranks <= 2:
            assert result["bit_identical"], key


def test_one_two_and_three_ranks(tmp_path):
    """Launch by launch (each costs seconds): parity on 2 ranks, bad input on one rank,
    flattened course gradients, a 2-rank checkpoint; that checkpoint continued on 3 ranks (bit-identical to one process)
    with parity on 3 ranks; its single-file export imported on 1 rank, parity on 1 rank."""
    directory = tmp_path / "ckpt"
    two = launch(
        2, "parity", "bad_input", "flattened_grads", f"save_then_continue={directory}=1:10"
    )
    check_parity(two["parity"], 2)
    assert two["flattened_grads"] == {"bit_identical": True}
    messages = two["bad_input"]["messages"]
    assert messages[0].startswith("rank 1 refused its input (ValueError: grads['dW1'] has shape")
    assert "must match exactly" in messages[1]
    assert two[f"save_then_continue={directory}=1:10"] == {"t": 10, "bit_identical": True}

    three = launch(3, "parity", f"save_then_continue={directory}=11:20")
    check_parity(three["parity"], 3)
    assert three[f"save_then_continue={directory}=11:20"] == {"t": 20, "bit_identical": True}
    assert len(list(directory.glob("shard-*.npz"))) == 3  # the 2-rank files are gone

    single = directory / "single.npz"
    one = launch(1, "parity", f"import_single={single}")
    check_parity(one["parity"], 1)
    assert one[f"import_single={single}"] == {"t": 25}
    print(json.dumps({"2 ranks": two["parity"], "3 ranks": three["parity"]}))


def test_low_precision_state_sharded_saved_and_resumed_on_other_rank_counts(tmp_path):
    """int8 state (Adam, Nesterov SGD, RMSprop with momentum) and bfloat16 state, sharded
    on 2 and 3 ranks with clipping and groups: bit-identical with one process, codes,
    scales and small layers' state included; a 2-rank checkpoint continued on 3 ranks,
    exported to one file and imported on 1 rank, bit-identical all along."""
    int8, bfloat16 = tmp_path / "int8", tmp_path / "bfloat16"
    first = {
        f"save_then_continue={d}=1:10={name}"
        for d, name in ((int8, "adam int8"), (bfloat16, "adamw bfloat16"))
    }
    two = launch(2, "low_precision_parity", *sorted(first))
    for report in two["low_precision_parity"].values():
        assert report["bit_identical"] and len(report["state_nbytes"]) == 2
    assert all(two[spec] == {"t": 10, "bit_identical": True} for spec in first)

    second = {
        f"save_then_continue={d}=11:20={name}"
        for d, name in ((int8, "adam int8"), (bfloat16, "adamw bfloat16"))
    }
    three = launch(3, "low_precision_parity", *sorted(second))
    assert all(r["bit_identical"] for r in three["low_precision_parity"].values())
    assert all(three[spec] == {"t": 20, "bit_identical": True} for spec in second)

    imports = [
        f"import_single={int8 / 'single.npz'}=adam int8",
        f"import_single={bfloat16 / 'single.npz'}=adamw bfloat16",
    ]
    one = launch(1, *imports)
    assert all(one[spec] == {"t": 25} for spec in imports)


def test_a_rank_killed_while_saving_leaves_the_previous_checkpoint(tmp_path):
    directory = tmp_path / "ckpt"
    launch(2, f"killed_while_saving={directory}", expect_failure=True)
    assert launch(2, f"load_after_kill={directory}") == {f"load_after_kill={directory}": {"t": 1}}


def test_shard_without_mpi4py_says_what_to_install(monkeypatch):
    import fastoptim
    import fastoptim.distributed

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install 'fastoptim\[mpi\]'"):
        fastoptim.distributed.shard(fastoptim.SGD({"w": __import__("numpy").ones(3)}))


@pytest.mark.parametrize("name", ["Adafactor", "LAMB"])
def test_an_optimizer_whose_step_needs_whole_layers_is_not_sharded(name):
    """Adafactor's slices would get their own RMS and no factors, LAMB's their own trust
    ratios: other numbers, refused."""
    import numpy as np

    import fastoptim
    import fastoptim.distributed

    opt = getattr(fastoptim, name)({"W": np.ones((4, 3))})
    with pytest.raises(TypeError, match=f"{name} cannot be sharded: its step needs sums"):
        fastoptim.distributed.shard(opt)
    opt.step({"W": np.ones((4, 3))})  # its state was not released


def test_an_optimizer_that_carries_running_values_is_not_sharded_yet():
    import numpy as np

    import fastoptim
    import fastoptim.distributed

    opt = fastoptim.AdamWScheduleFree({"W": np.ones((4, 3))})
    with pytest.raises(TypeError, match="AdamWScheduleFree cannot be sharded yet"):
        fastoptim.distributed.shard(opt)
    opt.step({"W": np.ones((4, 3))})  # its state was not released


def test_the_demo_runs_sharded_and_prints_what_one_process_does():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), NUMBA_NUM_THREADS="1")
    command = [sys.executable, "-m", "fastoptim", "demo", "--distributed", "--epochs", "30"]
    done = subprocess.run(
        [MPIEXEC, "-n", "2", *command, "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 ranks" in done.stdout and "one process" in done.stdout
    assert done.stdout.rstrip().endswith("agree to the digits shown: yes")
