"""The bench command runs every available implementation and reports consistent numbers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import fastoptim
from fastoptim import bench
from fastoptim.bench import report
from fastoptim.bench.algorithms import ALGORITHMS
from fastoptim.bench.contenders import FastoptimFlat, KernelAlone
from fastoptim.bench.problems import Problem, model_shapes


def test_model_shapes():
    assert model_shapes("1e6") == (("W1", (999_000,)), ("b1", (1000,)))
    assert len(model_shapes("10000x1000")) == 10_000
    assert sum(a * b for _, (a, b) in model_shapes("course")) == 30


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bench_rows_are_consistent(algorithm, tmp_path):
    lines = []
    rows = bench.run(
        algorithms=[algorithm],
        models=["3e4", "course"],
        dtype="float64",
        thread_counts=[1],
        budget_seconds=0.05,
        only=["fastoptim", "fastoptim kernel alone", "fastoptim course dicts", "numpy reference"],
        progress=False,
        echo=lines.append,
    )
    spec = ALGORITHMS[algorithm]
    names = {"fastoptim", "roof"} | ({"fastoptim kernel alone"} if spec.elementwise else set())
    if spec.course:
        names |= {"fastoptim course dicts", "numpy reference"}
    assert {r["implementation"] for r in rows} == names
    for row in rows:
        assert row["ms_per_step"] > 0
        assert row["speedup_over"][row["implementation"]] == pytest.approx(1.0)
        two = {"adam", "adamw", "nadam", "radam", "adamax", "adadelta", "rprop", "schedule-free"}
        n_state = 3 if algorithm == "amsgrad" else 2 if algorithm in two else 1
        expected_bytes = (3 + 2 * n_state) * 8 * row["elements"]
        if algorithm == "adafactor":  # its passes: 8 elements moved for 1-D layers (3e4's),
            passes = 8 if row["model"] == "3e4" else 6  # 6 for 2-D ones (all the course's)
            expected_bytes = passes * 8 * row["elements"]
        if algorithm == "lamb":  # its two passes: 6 elements, then 4
            expected_bytes = 10 * 8 * row["elements"]
        assert row["gb_per_s"] == pytest.approx(expected_bytes / (row["ms_per_step"] / 1e3) / 1e9)
        for other in rows:
            if other["model"] == row["model"]:
                product = (
                    row["speedup_over"][other["implementation"]]
                    * other["speedup_over"][row["implementation"]]
                )
                assert product == pytest.approx(1.0)
        has_overhead = row["python_ms_per_step"] is not None
        assert has_overhead == (row["implementation"] == "fastoptim" and spec.elementwise)
    assert any("fastoptim speed-up" in line for line in lines)
    per_model = 1 if spec.elementwise else 0
    assert sum("fastoptim's Python per step" in line for line in lines) == 2 * per_model
    if not spec.elementwise:
        assert any("several passes, not one elementwise kernel" in line for line in lines)
    if not ALGORITHMS[algorithm].course:
        assert any("only Adam and Momentum have course functions" in line for line in lines)

    report.write_json(str(tmp_path / "out.json"), rows, "test")
    report.write_csv(str(tmp_path / "out.csv"), rows)
    saved = json.loads((tmp_path / "out.json").read_text())
    assert len(saved["results"]) == len(rows) and "numba" in saved["machine"]
    with open(tmp_path / "out.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)


# every algorithm with its state in the parameters' dtype; low-precision state for two
# (each compiles loops of its own)
KERNEL_ALONE = [(a, None) for a, spec in ALGORITHMS.items() if spec.elementwise] + [
    (a, s) for a in ("adam", "momentum") for s in ("bfloat16", "int8")
]


@pytest.mark.parametrize(("algorithm", "state_dtype"), KERNEL_ALONE)
def test_the_kernel_alone_does_the_same_update(algorithm, state_dtype):
    shapes = model_shapes("3e4")  # a quantized weight and a small bias under int8
    problem = Problem(algorithm, "3e4", shapes, np.dtype(np.float32), 1, state_dtype)
    inputs = problem.inputs()
    whole, alone = FastoptimFlat(), KernelAlone()
    for contender in (whole, alone):
        contender.setup(problem, *inputs)
        contender.step()
    np.testing.assert_array_equal(alone.params.buffer, whole.params.buffer)
    assert not np.array_equal(whole.params.buffer, fastoptim.flatten(inputs[0]).buffer)


def test_the_torch_model_mode_steps_a_real_module(monkeypatch):
    """The torch rows step the parameters of an nn.Module (here a small stand-in for the
    100M-parameter stack) and fastoptim.torch does the same update as torch.optim."""
    torch = pytest.importorskip("torch")
    from fastoptim.bench import contenders, problems

    monkeypatch.setitem(problems.TORCH_MODELS, "linear-tiny", (3, 8))
    problem = Problem("adamw", "linear-tiny", model_shapes("linear-tiny"), np.dtype(np.float64), 1)
    assert [shape for _, shape in problem.shapes] == [(8, 8), (8,)] * 3
    inputs = problem.inputs()
    ours, theirs = contenders.FastoptimTorch(), contenders.Torch("fused")
    for contender in (ours, theirs):
        contender.setup(problem, *inputs)
        assert all(isinstance(p, torch.nn.Parameter) for p in contender.params)
        for _ in range(3):
            contender.step()
    for mine, reference in zip(ours.params, theirs.params, strict=True):
        np.testing.assert_allclose(mine.detach().numpy(), reference.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("implementation", ["for-loop", "foreach"])
def test_the_schedulefree_rows_do_fastoptims_update(implementation):
    """The schedulefree package's rows step in train mode the update fastoptim.torch and
    fastoptim make (after three steps, within its roundings)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("schedulefree")
    from fastoptim.bench import contenders

    problem = Problem("schedule-free", "3e4", model_shapes("3e4"), np.dtype(np.float64), 1)
    inputs = problem.inputs()
    sides = contenders.ScheduleFreePackage(implementation), contenders.FastoptimTorch()
    for contender in sides:
        contender.setup(problem, *inputs)
        for _ in range(3):
            contender.step()
            for param, grad in zip(contender.params, inputs[1].values(), strict=True):
                param.grad.copy_(torch.from_numpy(grad))  # the package divides it in place
    numpy_side = FastoptimFlat()
    numpy_side.setup(problem, *inputs)
    for _ in range(3):
        numpy_side.step()
    for theirs, ours, flat in zip(*(side.params for side in sides), numpy_side.params.values(),
                                  strict=True):  # fmt: skip
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(flat.ravel(), theirs.detach().numpy().ravel(), rtol=1e-12)
