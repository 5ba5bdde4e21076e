"""ZeroRedundancyOptimizer over a fastoptim.torch class and over the torch.optim class of the
same name, side by side, with DDP on 2 gloo processes on localhost (run by
test_torch_clients.py): ``python zero_worker.py AdamW ASGD Adafactor`` (default AdamW).

Each rank trains both on its own batches for 8 steps, with ``parameters_as_bucket_view``
False and True; before step 4 it resumes: ``consolidate_state_dict()`` to rank 0, a new
model and ZeroRedundancyOptimizer, ``load_state_dict``. Prints one JSON line: per class, rank
and bucket view, the largest difference between the two trajectories (weights' scale 1).
"""

from __future__ import annotations

import json
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

STEPS, RESUME_AT, WORLD = 8, 4, 2


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.Tanh(),
        torch.nn.Linear(8, 1),
    ).double()  # fmt: skip


def trajectory(optimizer_class, bucket_view: bool, rank: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(rank)
    x = torch.randn(32, 6, dtype=torch.float64, generator=generator)
    y = torch.randn(32, 1, dtype=torch.float64, generator=generator)

    def build(weights=None):
        net = model()
        if weights is not None:
            net.load_state_dict(weights)
        ddp = DistributedDataParallel(net)
        zero = ZeroRedundancyOptimizer(
            ddp.parameters(), optimizer_class=optimizer_class,
            parameters_as_bucket_view=bucket_view, lr=0.01, weight_decay=0.1,
        )  # fmt: skip
        return ddp, zero

    ddp, zero = build()
    weights = []
    for t in range(STEPS):
        if t == RESUME_AT:
            zero.consolidate_state_dict(to=0)
            saved = [zero.state_dict() if rank == 0 else None]
            dist.broadcast_object_list(saved, src=0)
            ddp, zero = build({k: v.clone() for k, v in ddp.module.state_dict().items()})
            zero.load_state_dict(saved[0])
        zero.zero_grad()
        torch.nn.functional.mse_loss(ddp(x), y).backward()
        zero.step()
        weights.append(torch.cat([p.detach().flatten() for p in ddp.parameters()]))
    return torch.stack(weights)


def run(rank: int, port: int, names: list[str], queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    import fastoptim.torch

    for name in names:
        for bucket_view in (False, True):
            ours = trajectory(getattr(fastoptim.torch, name), bucket_view, rank)
            theirs = trajectory(getattr(torch.optim, name), bucket_view, rank)
            queue.put([name, rank, bucket_view, float((ours - theirs).abs().max())])
    dist.destroy_process_group()


def main() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    names = sys.argv[1:] or ["AdamW"]
    context = mp.get_context("spawn")  # Numba's OpenMP layer is not fork-safe
    queue = context.Queue()
    processes = [context.Process(target=run, args=(r, port, names, queue)) for r in range(WORLD)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=150) for _ in range(2 * WORLD * len(names))]
    for process in processes:
        process.join(30)
    print(json.dumps(results))
    sys.exit(max(process.exitcode or 0 for process in processes))


if __name__ == "__main__":
    main()
