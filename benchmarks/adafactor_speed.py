"""Adafactor's step against torch's for-loop and foreach forms and against the roof of the
passes it makes (fastoptim.kernels.passes_roof), timed in interleaved rounds: a report run by
hand (needs torch).

    python -m benchmarks.adafactor_speed [--threads 2] [--rounds 15]   (from the checkout)

Models: a 1000 x 9999 matrix (factored: 3 passes, 24 bytes per float32 element), a
9,999,000-element vector (full second moment: 2 passes, 32 bytes), and the bench's torch
models linear-100m and linear-many (weights factored, biases full). The roof is the same
traffic with trivial arithmetic, over one buffer per kind of layer. Each round steps every
contender once, in turn; prints medians in ms and the ratios.
"""

from __future__ import annotations

import argparse

import numba
import numpy as np

import fastoptim
from benchmarks.common import interleaved_medians
from fastoptim.bench.problems import model_shapes
from fastoptim.kernels.passes_roof import adafactor_roof

MODELS = {
    "1000x9999": (("W", (1000, 9999)),),
    "vector 1e7": (("w", (9_999_000,)),),
    "linear-100m": model_shapes("linear-100m"),
    "linear-many": model_shapes("linear-many"),
}


def contenders(shapes):
    import torch

    import fastoptim.torch as fastoptim_torch

    rng = np.random.default_rng(0)
    params = {n: rng.standard_normal(s, dtype=np.float32) for n, s in shapes}
    grads = {n: rng.standard_normal(s, dtype=np.float32) * 1e-2 for n, s in shapes}
    made = {}
    opt = fastoptim.Adafactor({n: p.copy() for n, p in params.items()}, lr=1e-3, nonfinite="ignore")
    made["fastoptim"] = lambda: opt.step(grads)
    for label, cls, options in (
        ("fastoptim.torch", fastoptim_torch.Adafactor, {"nonfinite": "ignore"}),
        ("torch for-loop", torch.optim.Adafactor, {"foreach": False}),
        ("torch foreach", torch.optim.Adafactor, {"foreach": True}),
    ):
        tensors = [torch.tensor(params[n].copy(), requires_grad=True) for n, _ in shapes]
        for tensor, (n, _) in zip(tensors, shapes, strict=True):
            tensor.grad = torch.tensor(grads[n])
        made[label] = cls(tensors, lr=1e-3, **options).step
    made["roof"] = adafactor_roof([shape for _, shape in shapes], np.dtype(np.float32))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    fastoptim.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    print("| model | rounds | roof | fastoptim (% of roof) | fastoptim.torch | torch for-loop "
          "| torch foreach | fastoptim vs torch's fastest | fastoptim.torch vs it |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for model, shapes in MODELS.items():
        steps = contenders(shapes)
        ms = interleaved_medians(steps, args.rounds)
        fastest = min(ms["torch for-loop"], ms["torch foreach"])
        print(
            f"| {model} | {args.rounds} | {ms['roof']:.3g} | {ms['fastoptim']:.3g} "
            f"({100 * ms['roof'] / ms['fastoptim']:.0f}%) | {ms['fastoptim.torch']:.3g} | "
            f"{ms['torch for-loop']:.3g} | {ms['torch foreach']:.3g} | "
            f"{fastest / ms['fastoptim']:.2f}x | {fastest / ms['fastoptim.torch']:.2f}x |"
        )


if __name__ == "__main__":
    main()
