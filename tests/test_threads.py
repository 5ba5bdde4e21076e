"""Threads and processes: any thread count gives the same bits through every entry point;
optimizers stepped from several Python threads at once do not disturb each other; forked
workers keep working, even when they step an optimizer themselves."""

from __future__ import annotations

import multiprocessing
import threading

import numba
import numpy as np
import pytest
from registry import ALGORITHMS, ENTRY_POINTS, entry_points_for, random_grads, random_parameters

import fastoptim

SHAPES = {"W1": (300, 400), "b1": (300, 1), "W2": (7, 300)}  # W1 takes the parallel kernel
STEPS = 5
TWO = min(2, numba.config.NUMBA_NUM_THREADS)


def run(algorithm, entry, threads):
    hp = algorithm.hyperparameter_sets[1]
    with fastoptim.num_threads(threads):
        fast = ENTRY_POINTS[entry](algorithm, random_parameters(SHAPES, seed=1), hp)
        rng = np.random.default_rng(2)
        for t in range(1, STEPS + 1):
            fast.step(random_grads(SHAPES, rng), t)
    params, states = fast.current()
    return [np.array(a) for a in [*params.values(), *(v for s in states for v in s.values())]]


@pytest.mark.parametrize(
    ("algorithm", "entry"),
    [(a, e) for a in ALGORITHMS for e in entry_points_for(a)],
    ids=lambda x: getattr(x, "name", x),
)
def test_one_and_two_threads_give_the_same_bits_through_every_entry_point(algorithm, entry):
    assert fastoptim.config.SERIAL_BELOW <= 300 * 400
    for a, b in zip(run(algorithm, entry, 1), run(algorithm, entry, TWO), strict=True):
        assert a.tobytes() == b.tobytes()


def test_optimizers_stepped_from_several_python_threads_at_once():
    def train(algorithm, seed, grads_as_dict):
        opt = algorithm.make_optimizer(
            random_parameters(SHAPES, seed), algorithm.hyperparameter_sets[0]
        )
        rng = np.random.default_rng(seed)
        for _ in range(20):
            grads = random_grads(SHAPES, rng)
            opt.step(grads if grads_as_dict else _flat(opt, grads))
        return opt.params.buffer.copy()

    jobs = [
        (algorithm, seed, seed % 2 == 0)
        for algorithm in ALGORITHMS
        if algorithm.make_optimizer
        for seed in range(4)
    ]
    expected = [train(*job) for job in jobs]  # one after another
    results: list = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def worker(i):
        barrier.wait()  # all start together
        results[i] = train(*jobs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for got, want in zip(results, expected, strict=True):
        assert got is not None and got.tobytes() == want.tobytes()


def _flat(opt, grads):
    flat = opt.params.zeros_like(prefix="d")
    for key, value in grads.items():
        flat[key] = value
    return flat


def _step_in_worker(seed):
    """Runs in a forked worker: a fresh optimizer, one step (the parallel size)."""
    opt = fastoptim.Adam(random_parameters(SHAPES, seed))
    opt.step(random_grads(SHAPES, np.random.default_rng(seed)))
    return opt.params.buffer


def test_forked_workers_keep_working_after_a_step_and_can_step_themselves():
    expected = [_step_in_worker(seed) for seed in range(3)]  # the parent's thread pool runs
    fork = multiprocessing.get_context("fork")
    with fork.Pool(2) as pool:  # a data loader's workers, forked after a step
        sums = pool.map_async(np.sum, [np.arange(10), np.arange(5)]).get(timeout=60)
        stepped = pool.map_async(_step_in_worker, range(3)).get(timeout=60)
    assert sums == [45, 10]
    for got, want in zip(stepped, expected, strict=True):
        assert got.tobytes() == want.tobytes()
    # the parent still has its parallel kernels
    assert fastoptim.config.SERIAL_BELOW < 300 * 400
    _step_in_worker(0)
