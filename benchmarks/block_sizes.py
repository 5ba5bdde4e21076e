"""Adam's step with float32, bfloat16 and int8 state (int8 in blocks of 64, 256 and 4096),
timed in interleaved rounds: a report run by hand.

    python benchmarks/block_sizes.py [--elements 1e8] [--threads 2] [--rounds 7] [--in-cache]

One float32 layer of ``--elements`` parameters per optimizer, ``nonfinite='ignore'``;
each round steps every optimizer once, in turn, so that they share the machine's noise.
Prints the median ms per step and float32 state's median over each.

``--in-cache`` also times each step's arithmetic with no memory traffic to wait for: steps
of 8192 and of 65536 elements per thread (in each core's L2), 200 at a time (int8 in blocks
of 4096 is left out: one thread's chunk of 64 blocks is past L2); the
difference of their medians over the difference in elements is the time per element with
the step's fixed costs (Python, the parallel region) taken out. No step at ``--elements``
can take less than that time per element, so float32 state's measured step over it is the
largest speed-up over float32 state that the state dtype can reach on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastoptim
from fastoptim.kernels.loop_source import BLOCKS_PER_CHUNK

CASES = {
    "float32": {},
    "bfloat16": {"state_dtype": "bfloat16"},
    "int8, blocks of 64": {"state_dtype": "int8", "block_size": 64},
    "int8, blocks of 256": {"state_dtype": "int8"},
    "int8, blocks of 4096": {"state_dtype": "int8", "block_size": 4096},
}
IN_CACHE_PER_THREAD = (8192, 65536)  # elements per thread: both sizes quantize under int8
STEPS_PER_TIMING = 200


def _made(n: int) -> dict[str, tuple[fastoptim.Optimizer, fastoptim.FlatParams]]:
    """An Adam optimizer of each case over one layer of ``n`` elements, stepped once."""
    gradient = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    made = {}
    for name, options in CASES.items():
        optimizer = fastoptim.Adam(
            {"w": np.zeros(n, np.float32)}, lr=1e-3, nonfinite="ignore", **options
        )
        grads = optimizer.params.zeros_like(prefix="d")
        grads.buffer[...] = gradient
        optimizer.step(grads)  # compiles
        made[name] = (optimizer, grads)
    return made


def _medians(made: dict, rounds: int, steps: int = 1) -> dict[str, float]:
    """Median seconds per step of each case, over interleaved rounds of ``steps`` steps."""
    times: dict[str, list[float]] = {name: [] for name in made}
    for _ in range(rounds):
        for name, (optimizer, grads) in made.items():
            start = time.perf_counter()
            for _ in range(steps):
                optimizer.step(grads)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(measured) for name, measured in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=float, default=1e8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--in-cache", action="store_true")
    arguments = parser.parse_args()
    n = int(arguments.elements)
    fastoptim.set_num_threads(arguments.threads)
    medians = _medians(_made(n), arguments.rounds)
    base = medians["float32"]
    print(f"Adam, {n:.0e} elements, {arguments.threads} threads, {arguments.rounds} rounds")
    for name, median in medians.items():
        print(f"{name:<22} {median * 1e3:7.1f} ms   float32 state / this: {base / median:.2f}x")
    if not arguments.in_cache:
        return
    small, large = (per_thread * arguments.threads for per_thread in IN_CACHE_PER_THREAD)
    at_small = _medians(_made(small), 15, STEPS_PER_TIMING)
    at_large = _medians(_made(large), 15, STEPS_PER_TIMING)
    print(f"in cache ({small} and {large} elements, {STEPS_PER_TIMING} steps a timing, 15 rounds):")
    for name, options in CASES.items():
        chunk = BLOCKS_PER_CHUNK * options.get("block_size", 256)
        if options.get("state_dtype") == "int8" and chunk > IN_CACHE_PER_THREAD[1]:
            print(f"{name:<22} not measured: a thread's chunk of {chunk} elements is past L2")
            continue
        per_element = (at_large[name] - at_small[name]) / (large - small)
        floor = per_element * n
        print(
            f"{name:<22} {per_element * 1e9:6.3f} ns/element: at least {floor * 1e3:6.1f} ms "
            f"at {n:.0e}; float32 state / floor: {base / floor:.2f}x at most"
        )


if __name__ == "__main__":
    main()
