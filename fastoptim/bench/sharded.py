"""``python -m fastoptim bench --sharded``: one sharded Adam step on 1, 2, 3 ... ranks of this
machine (mpiexec), and torch's ZeroRedundancyOptimizer (gloo) on the same model.

Each configuration is one ``mpiexec`` launch of this module. A step is timed on every rank
between barriers, and the slowest rank's time counts; the median over the steps is
reported. The collectives are also timed alone (reduce-scatter of the gradients plus
allgather of the parameters), so the table shows how much of a step is communication.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CORES = os.cpu_count() or 1


def run(ranks: list[int], models: list[str], steps: int = 30, echo=print) -> list[dict]:
    """Launch every (model, ranks, implementation) and print one table per model."""
    mpiexec = _mpiexec()
    if mpiexec is None:
        echo("skipped the sharded bench: no mpiexec (pip install 'fastoptim[mpi]')")
        return []
    implementations = ["fastoptim"] + (["torch ZeroRedundancyOptimizer"] if _has("torch") else [])
    rows = []
    for model in models:
        for implementation in implementations:
            for n in ranks:
                rows.append(_launch(mpiexec, n, model, implementation, steps))
        echo(_table([r for r in rows if r["model"] == model]))
    if "torch ZeroRedundancyOptimizer" not in implementations:
        echo("skipped torch ZeroRedundancyOptimizer: torch is not installed")
    return rows


def _launch(mpiexec: str, n: int, model: str, implementation: str, steps: int) -> dict:
    threads = str(max(1, CORES // n))  # ranks x threads within the cores
    env = dict(os.environ, NUMBA_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])
    command = [mpiexec, "-n", str(n), sys.executable, "-m", "fastoptim.bench.sharded"]
    command += [model, implementation, str(steps), str(_free_port())]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    first = rows[0]
    lines = [
        f"Sharded Adam step, model {first['model']}: {first['elements']:,} float32 elements, "
        f"median of {first['steps']} steps (slowest rank), {CORES} cores",
        f"  {'implementation':<32}{'ranks':>6}{'step ms':>9}{'comm ms':>9}"
        f"{'state MB/rank':>15}{'sent MB/rank (model)':>22}",
    ]
    for r in rows:
        lines.append(
            f"  {r['implementation']:<32}{r['ranks']:>6}{r['step_ms']:>9.2f}{r['comm_ms']:>9.2f}"
            f"{r['state_bytes_per_rank'] / 1e6:>15.1f}{r['sent_bytes_per_rank'] / 1e6:>22.1f}"
        )
    return "\n".join(lines) + "\n"


def _mpiexec() -> str | None:
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- inside mpiexec ---------------------------------------------------------------------------
def _worker(model: str, implementation: str, steps: int, port: int) -> None:
    from mpi4py import MPI

    from fastoptim.bench.problems import Problem, model_shapes

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    problem = Problem("adam", model, model_shapes(model), np.dtype(np.float32), 1)
    parameters, grads = problem.inputs(seed=rank)
    if implementation == "fastoptim":
        step, communicate, state_bytes = _fastoptim(comm, parameters, grads)
    else:
        step, communicate, state_bytes = _torch_zero(rank, size, port, parameters, grads)
    step_ms = _timed(comm, step, steps)
    comm_ms = _timed(comm, communicate, steps)
    n = problem.elements
    result = {
        "model": model,
        "implementation": implementation,
        "ranks": size,
        "elements": n,
        "steps": steps,
        "step_ms": step_ms,
        "comm_ms": comm_ms,
        "state_bytes_per_rank": max(comm.allgather(state_bytes)),
        # reduce-scatter and allgather each move (P - 1) / P of the buffer per rank
        "sent_bytes_per_rank": 2 * (size - 1) / size * n * 4,
    }
    if rank == 0:
        print(json.dumps(result), flush=True)


def _fastoptim(comm, parameters, grads):
    import fastoptim
    import fastoptim.distributed

    params = fastoptim.flatten(parameters)
    flat_grads = params.zeros_like(prefix="d")
    for key, value in grads.items():
        flat_grads[key] = value
    sharded = fastoptim.distributed.shard(
        fastoptim.Adam(params, lr=1e-3, nonfinite="ignore"), comm, reduce="mean"
    )
    received = np.empty_like(sharded.received)

    def communicate() -> None:  # the step's two collectives, alone
        comm.Reduce_scatter(flat_grads.buffer, received, recvcounts=sharded.counts)
        sharded.allgather_params()

    state_bytes = sum(s.buffer.nbytes for s in sharded.state.values())
    return (lambda: sharded.step(flat_grads)), communicate, state_bytes


def _torch_zero(rank, size, port, parameters, grads):
    import torch
    import torch.distributed as tdist
    from torch.distributed.optim import ZeroRedundancyOptimizer

    torch.set_num_threads(max(1, CORES // size))
    tdist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size
    )
    params = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in parameters.values()]
    flat_grad = torch.cat([torch.from_numpy(g).flatten() for g in grads.values()])
    views, offset = [], 0
    for param in params:
        views.append(flat_grad[offset : offset + param.numel()].view_as(param))
        offset += param.numel()
    for param, view in zip(params, views, strict=True):
        param.grad = view
    optimizer = ZeroRedundancyOptimizer(params, optimizer_class=torch.optim.Adam, lr=1e-3)

    def communicate() -> None:  # the gradients' all-reduce (DDP's job) alone
        tdist.all_reduce(flat_grad)

    def step() -> None:  # all-reduce of the flat gradients, then ZeRO's step and broadcast
        tdist.all_reduce(flat_grad)
        flat_grad.div_(size)
        optimizer.step()

    step()  # makes the state
    state_bytes = sum(
        t.numel() * t.element_size()
        for state in optimizer.optim.state.values()
        for t in state.values()
        if torch.is_tensor(t) and t.dim() > 0
    )
    return step, communicate, state_bytes


def _timed(comm, action, steps: int) -> float:
    """Median over ``steps`` of the slowest rank's time for ``action``, in ms."""
    for _ in range(2):
        action()
    samples = []
    for _ in range(steps):
        comm.Barrier()
        start = time.perf_counter()
        action()
        elapsed = time.perf_counter() - start
        samples.append(comm.allreduce(elapsed, op=_max()))
    return 1e3 * statistics.median(samples)


def _max():
    from mpi4py import MPI

    return MPI.MAX


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
