"""Checkpoints: save, load and continue bit-identically; bad files are refused and change
nothing; a save killed at any moment leaves a loadable checkpoint."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from registry import ALGORITHMS

import fastoptim

WITH_CLASS = [a for a in ALGORITHMS if a.make_optimizer]


def model(dtype=np.float32):
    rng = np.random.default_rng(0)
    return {
        "W1": rng.standard_normal((40, 30)).astype(dtype),
        "b1": np.zeros((40, 1), dtype),
        "scale": np.array(1.0, dtype),
    }


def grads_at(t, dtype=np.float32):
    rng = np.random.default_rng(100 + t)
    return {"d" + k: rng.standard_normal(v.shape).astype(dtype) for k, v in model(dtype).items()}


def trained(algorithm, steps, dtype=np.float32):
    opt = algorithm.make_optimizer(model(dtype), algorithm.hyperparameter_sets[1])
    for t in range(1, steps + 1):
        opt.step(grads_at(t, dtype))
    return opt


def everything(opt):
    return [np.array(opt.params.buffer), *(np.array(s.buffer) for s in opt.state.values()), opt.t]


def assert_same(before, opt):
    after = everything(opt)
    assert after[-1] == before[-1]
    for saved, current in zip(before[:-1], after[:-1], strict=True):
        np.testing.assert_array_equal(current, saved)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("algorithm", WITH_CLASS, ids=lambda a: a.name)
def test_save_load_and_ten_more_steps_is_bit_identical(algorithm, dtype, tmp_path):
    uninterrupted = trained(algorithm, 5, dtype)
    fastoptim.save(tmp_path / "ckpt.npz", trained(algorithm, 5, dtype))
    # a fresh process would start from the model's initial values and default settings
    resumed = algorithm.make_optimizer(model(dtype), algorithm.hyperparameter_sets[0])
    fastoptim.load(tmp_path / "ckpt.npz", resumed)
    assert resumed.t == 5 and resumed.hyperparameters() == uninterrupted.hyperparameters()
    for t in range(6, 16):
        uninterrupted.step(grads_at(t, dtype))
        resumed.step(grads_at(t, dtype))
    np.testing.assert_array_equal(resumed.params.buffer, uninterrupted.params.buffer)
    for key in uninterrupted.state:
        np.testing.assert_array_equal(resumed.state[key].buffer, uninterrupted.state[key].buffer)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # no temporary file left


def corrupt(kind, path, tmp_path):
    """Make a bad checkpoint file of the given kind from the good one at ``path``."""
    data = bytearray(path.read_bytes())
    bad = tmp_path / f"{kind}.npz"
    if kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "bit flip in the parameters":
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("params.npy")
        position = info.header_offset + 30 + len(info.filename) + info.compress_size - 7
        data[position] ^= 0x10
        bad.write_bytes(data)
    elif kind == "not a checkpoint":
        np.savez(bad, x=np.zeros(3))
    elif kind == "empty":
        bad.write_bytes(b"")
    return bad


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", "truncated, corrupted"),
        ("bit flip in the parameters", "truncated, corrupted"),
        ("not a checkpoint", "truncated, corrupted"),  # no manifest
        ("empty", "truncated, corrupted"),
    ],
)
def test_damaged_files_are_refused_and_change_nothing(kind, message, tmp_path):
    adam = next(a for a in WITH_CLASS if a.name == "adam")
    fastoptim.save(tmp_path / "good.npz", trained(adam, 3))
    bad = corrupt(kind, tmp_path / "good.npz", tmp_path)
    opt = trained(adam, 2)
    before = everything(opt)
    with pytest.raises(fastoptim.CheckpointError, match=message):
        fastoptim.load(bad, opt)
    assert_same(before, opt)


def test_files_that_do_not_fit_are_refused_and_change_nothing(tmp_path):
    adam, momentum = (next(a for a in WITH_CLASS if a.name == n) for n in ("adam", "momentum"))
    fastoptim.save(tmp_path / "adam.npz", trained(adam, 3))
    fastoptim.save(tmp_path / "momentum.npz", trained(momentum, 3))
    fastoptim.save(tmp_path / "float64.npz", trained(adam, 3, np.float64))
    other = dict(model(), W2=np.zeros((2, 2), np.float32))
    fastoptim.save(tmp_path / "other.npz", adam.make_optimizer(other, adam.hyperparameter_sets[1]))
    poisoned = trained(adam, 3)
    poisoned.state["exp_avg_sq"]["b1"][0, 0] = np.nan
    fastoptim.save(tmp_path / "nan state.npz", poisoned)
    poisoned = trained(adam, 3)
    poisoned.params["W1"][1, 2] = np.inf
    fastoptim.save(tmp_path / "inf params.npz", poisoned)
    cases = [
        ("momentum.npz", "saved by 'Momentum'"),
        ("float64.npz", "float64 array of shape"),
        ("other.npz", "shape"),
        ("nan state.npz", "NaN or Inf"),
        ("inf params.npz", "params hold NaN or Inf"),
    ]
    opt = trained(adam, 2)
    before = everything(opt)
    for name, message in cases:
        with pytest.raises(fastoptim.CheckpointError, match=message):
            fastoptim.load(tmp_path / name, opt)
        assert_same(before, opt)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        fastoptim.load(tmp_path / "missing.npz", opt)


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    adam = next(a for a in WITH_CLASS if a.name == "adam")
    path = tmp_path / "ckpt.npz"
    fastoptim.save(path, trained(adam, 3))
    previous = path.read_bytes()

    def fail_midway(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        fastoptim.save(path, trained(adam, 4))
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]


# -- a save killed for real ---------------------------------------------------------------
CRASH_TRIALS = 50
ELEMENTS = 25_000_000  # float32 parameters + Momentum's velocity: a 200 MB file

SAVER = textwrap.dedent(
    f"""
    import os
    import sys
    import numpy as np
    import fastoptim

    path, generation = sys.argv[1], int(sys.argv[2])
    params = fastoptim.flatten({{"W": np.zeros({ELEMENTS}, np.float32)}})
    opt = fastoptim.Momentum(params, lr=0.1, beta=0.9)
    opt.t = generation  # go on from the last complete save, which the test has just loaded
    print("ready", flush=True)
    while True:  # save generation after generation until killed
        opt.t += 1
        opt.params.buffer[:] = opt.t  # every element tells which save wrote it
        opt.state["velocity"].buffer[:] = -opt.t
        fastoptim.save(path, opt)
        print(opt.t, flush=True)
    """
)


def test_a_save_killed_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    """CRASH_TRIALS kills in all. Two savers run at a time, each on its own file and killed
    at its own random moment (the two cores are used; each file's story is sequential)."""
    if shutil.disk_usage(tmp_path).free < 2_000_000_000:
        pytest.skip("needs 2 GB free next to the temporary directory for four 200 MB files")
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    params = fastoptim.flatten({"W": np.zeros(ELEMENTS, np.float32)})
    opt = fastoptim.Momentum(params, lr=0.1, beta=0.9)
    chooser = random.Random(0)
    lanes = {tmp_path / name: [] for name in ("a.npz", "b.npz")}  # path -> generations loaded
    killed, killed_mid_save = 0, 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for trial in range(CRASH_TRIALS // len(lanes)):
        savers = {}
        for path, generations in lanes.items():
            last = str(generations[-1] if generations else 0)
            savers[path] = subprocess.Popen(
                [sys.executable, str(script), str(path), last],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        for saver in savers.values():
            assert saver.stdout is not None and saver.stdout.readline() == "ready\n"
            if trial == 0:
                assert saver.stdout.readline()  # one complete save first
        # each killed at its own moment: filling the buffers, writing, syncing, renaming
        moments = sorted((chooser.uniform(0.0, 0.5), str(path)) for path in savers)
        start = time.monotonic()
        for moment, path_name in moments:
            time.sleep(max(0.0, start + moment - time.monotonic()))
            savers[Path(path_name)].send_signal(signal.SIGKILL)
        for saver in savers.values():
            saver.wait()
            killed += 1
        for path, generations in lanes.items():
            leftovers = list(tmp_path.glob(f".{path.name}.*.tmp"))  # a save cut short
            killed_mid_save += len(leftovers)
            for leftover in leftovers:
                leftover.unlink()
            fastoptim.load(path, opt)
            generations.append(opt.t)
            assert opt.t >= max(generations[:-1], default=1)  # never an older save
            assert os.path.getsize(path) > 200_000_000
            # the parameters and the state are the ones of one and the same save
            assert np.all(opt.params.buffer == opt.t)
            assert np.all(opt.state["velocity"].buffer == -opt.t)
    assert killed == CRASH_TRIALS
    assert killed_mid_save >= CRASH_TRIALS // 4  # the kills did land inside saves
    print(f"{killed} kills, {killed_mid_save} inside a save; generations {list(lanes.values())}")
