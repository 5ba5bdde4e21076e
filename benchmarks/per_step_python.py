"""Per-step time of small optimizer steps and course drop-ins, where it is Python's time: for
comparing two checkouts side by side, not an asv benchmark.

    PYTHONPATH=<checkout> python benchmarks/per_step_python.py     # prints one JSON line

Run it alternately against each checkout several times, and compare the per-process medians
(a shared machine is noisy: take the minimum and the median over processes).
"""

from __future__ import annotations

import json
import time
import timeit

import numpy as np


def _median_us(step, rounds: int = 400, inner: int = 20) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(inner):
            step()
        times.append((time.perf_counter_ns() - start) / inner)
    times.sort()
    return times[len(times) // 2] / 1000.0


def optimizer_steps(fastoptim) -> dict[str, float]:
    """µs per ``opt.step`` (median of rounds), float32, two layers."""
    out = {}
    for n in (1000, 100_000):
        for case in ("adam", "adam checked", "adam clipped", "sgd", "adam dict"):
            rng = np.random.default_rng(0)
            params = fastoptim.flatten(
                {
                    "W1": rng.standard_normal(n // 2).astype(np.float32),
                    "W2": rng.standard_normal(n - n // 2).astype(np.float32),
                }
            )
            grads = params.zeros_like(prefix="d")
            grads.buffer[:] = rng.standard_normal(n).astype(np.float32) * 1e-3
            options = {} if case == "adam checked" else {"nonfinite": "ignore"}
            if case == "adam clipped":
                options["max_grad_norm"] = 1.0
            if case == "sgd":
                opt = fastoptim.SGD(params, lr=1e-3, momentum=0.9, **options)
            else:
                opt = fastoptim.Adam(params, lr=1e-3, **options)
            g = {"dW1": grads["dW1"], "dW2": grads["dW2"]} if case == "adam dict" else grads
            opt.step(g)
            out[f"{case} {n}"] = _median_us(lambda opt=opt, g=g: opt.step(g))
    return out


def course_drop_ins(fastoptim) -> dict[str, float]:
    """µs per drop-in call on a 6-layer course model (timeit minimum of 7)."""
    rng = np.random.default_rng(0)
    shapes = {"W1": (5, 2), "b1": (5, 1), "W2": (2, 5), "b2": (2, 1), "W3": (1, 2), "b3": (1, 1)}
    p = {k: rng.standard_normal(s) for k, s in shapes.items()}
    g = {"d" + k: rng.standard_normal(s) for k, s in shapes.items()}
    v = fastoptim.initialize_velocity(p)
    m, s = fastoptim.initialize_adam(p)
    calls = {
        "course gd": lambda: fastoptim.update_parameters_with_gd(p, g, 0.01),
        "course momentum": lambda: fastoptim.update_parameters_with_momentum(p, g, v, 0.9, 0.01),
        "course adam": lambda: fastoptim.update_parameters_with_adam(p, g, m, s, 3, 0.01),
    }
    out = {}
    for name, call in calls.items():
        call()
        out[name] = min(timeit.repeat(call, number=50_000, repeat=7)) / 50_000 * 1e6
    return out


if __name__ == "__main__":  # asv imports this folder: measure only when run
    import fastoptim

    print(json.dumps({**optimizer_steps(fastoptim), **course_drop_ins(fastoptim)}))
