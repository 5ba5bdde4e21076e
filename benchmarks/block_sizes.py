"""Adam's step with float32, bfloat16 and int8 state (int8 in blocks of 64, 256 and 4096),
timed in interleaved rounds: a report run by hand.

    python benchmarks/block_sizes.py [--elements 1e8] [--threads 2] [--rounds 7]

One float32 layer of ``--elements`` parameters per optimizer, ``nonfinite='ignore'``;
each round steps every optimizer once, in turn, so that they share the machine's noise.
Prints the median ms per step and float32 state's median over each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastoptim

CASES = {
    "float32": {},
    "bfloat16": {"state_dtype": "bfloat16"},
    "int8, blocks of 64": {"state_dtype": "int8", "block_size": 64},
    "int8, blocks of 256": {"state_dtype": "int8"},
    "int8, blocks of 4096": {"state_dtype": "int8", "block_size": 4096},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=float, default=1e8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    arguments = parser.parse_args()
    n = int(arguments.elements)
    fastoptim.set_num_threads(arguments.threads)
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
    times: dict[str, list[float]] = {name: [] for name in made}
    for _ in range(arguments.rounds):
        for name, (optimizer, grads) in made.items():
            start = time.perf_counter()
            optimizer.step(grads)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["float32"])
    print(f"Adam, {n:.0e} elements, {arguments.threads} threads, {arguments.rounds} rounds")
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"{name:<22} {median * 1e3:7.1f} ms   float32 state / this: {base / median:.2f}x")


if __name__ == "__main__":
    main()
