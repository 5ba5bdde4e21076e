"""``mpiexec -n N python -m fastoptim demo --distributed``: the demo's training with the
optimizer sharded over N processes, each taking its share of every mini-batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

import fastoptim
from fastoptim.demo.data import mini_batches, two_moons
from fastoptim.demo.network import (
    accuracy,
    backward_propagation,
    compute_cost,
    forward_propagation,
    initialize_parameters,
)
from fastoptim.demo.train import LAYER_DIMS, LEARNING_RATE, Result, train

# the course updates as optimizer classes (the same kernels, so the same numbers)
OPTIMIZERS: dict[str, Callable[[fastoptim.FlatParams, float], fastoptim.Optimizer]] = {
    "gd": lambda params, lr: fastoptim.SGD(params, lr=lr),
    "momentum": lambda params, lr: fastoptim.Momentum(params, lr=lr, beta=0.9),
    "adam": lambda params, lr: fastoptim.Adam(params, lr=lr),
}


def train_sharded(X, Y, optimizer: str, epochs: int, comm: Any, on_epoch=None) -> Result:
    """Mini-batch training as ``train`` does it, with every batch split over the ranks:
    each rank's gradient is its columns' mean times its share of the batch, so the sum
    over the ranks is the whole batch's mean gradient."""
    import fastoptim.distributed

    rank, size = comm.Get_rank(), comm.Get_size()
    parameters = fastoptim.flatten(initialize_parameters(LAYER_DIMS))
    grads = parameters.zeros_like(prefix="d")
    sharded = fastoptim.distributed.shard(
        OPTIMIZERS[optimizer](parameters, LEARNING_RATE[optimizer]), comm, reduce="sum"
    )
    rng = np.random.default_rng(10)  # the same mini-batches on every rank
    update_seconds, step_seconds = [], []
    cost = float("nan")
    for _ in range(epochs):
        local_cost = 0.0
        for X_batch, Y_batch in mini_batches(X, Y, 64, rng):
            start = time.perf_counter()
            batch = X_batch.shape[1]
            mine = slice(rank * batch // size, (rank + 1) * batch // size)
            X_mine, Y_mine = X_batch[:, mine], Y_batch[:, mine]
            if X_mine.shape[1]:
                A3, cache = forward_propagation(X_mine, parameters)
                local_cost += compute_cost(A3, Y_mine) * X_mine.shape[1]
                backward_propagation(X_mine, Y_mine, parameters, cache, grads)
                grads.buffer *= X_mine.shape[1] / batch
            else:  # more ranks than examples in this batch
                grads.buffer.fill(0)
            before_update = time.perf_counter()
            sharded.step(grads)
            end = time.perf_counter()
            update_seconds.append(end - before_update)
            step_seconds.append(end - start)
        cost = comm.allreduce(local_cost) / X.shape[1]
        if on_epoch is not None:
            on_epoch()
    return Result(
        optimizer,
        f"{size} ranks",
        cost,
        accuracy(X, Y, parameters),
        update_seconds,
        step_seconds,
    )


def run(epochs: int, comm: Any, n_samples: int = 300, on_epoch=None) -> list[Result]:
    """Each optimizer sharded over the ranks, and in one process (every rank runs that
    too, at the same time, rather than wait): the two rows should agree."""
    X, Y = two_moons(n_samples)
    results = []
    for optimizer in OPTIMIZERS:
        results.append(train_sharded(X, Y, optimizer, epochs, comm, on_epoch))
        single = train(X, Y, optimizer, "fastoptim", epochs, on_epoch)
        single.implementation = "one process"
        results.append(single)
    return results


def format_table(results: list[Result], epochs: int) -> str:
    lines = [
        f"Two moons, network {LAYER_DIMS}, mini-batches of 64 split over the ranks, "
        f"{epochs} epochs. Times are medians over all steps.",
        "",
        f"{'optimizer':<10} {'run':<12} {'final loss':>11} {'accuracy':>9} {'update us':>10}",
    ]
    for r in results:
        lines.append(
            f"{r.optimizer:<10} {r.implementation:<12} {r.cost:>11.6f} {r.accuracy:>8.1%} "
            f"{np.median(r.update_seconds) * 1e6:>10.1f}"
        )
    pairs = [(results[i], results[i + 1]) for i in range(0, len(results), 2)]
    same = all(
        f"{a.cost:.6f}" == f"{b.cost:.6f}" and f"{a.accuracy:.1%}" == f"{b.accuracy:.1%}"
        for a, b in pairs
    )
    lines += ["", "sharded and one process agree to the digits shown: " + ("yes" if same else "NO")]
    return "\n".join(lines)
