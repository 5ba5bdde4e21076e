"""The weight EMA fused into the step (``ema_decay``) against torch's step followed by
``AveragedModel.update_parameters`` (swa_utils' EMA, a foreach ``lerp`` over every
parameter), timed in interleaved rounds: a report run by hand (needs torch).

    python -m benchmarks.ema_speed [--threads 2] [--rounds 15] [--models 1e7,1e8]   (from the checkout)

AdamW, float32. A fused step reads p, g, m, v and the average and writes p, m, v and the
average: 9 elements (36 bytes), the traffic of AMSGrad's roof (kernels/roof.py), against
28 bytes without the average. torch's pair makes a second pass over the parameters and the
average after its fused step. Each round steps every contender once, in turn; prints
medians in ms and the ratios.
"""

from __future__ import annotations

import argparse

import numba
import numpy as np

import fastoptim
from benchmarks.common import interleaved_medians
from fastoptim import kernels
from fastoptim.bench.problems import model_shapes

DECAY = 0.999
LR = 1e-3


def contenders(shapes):
    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    import fastoptim.torch as fastoptim_torch

    rng = np.random.default_rng(0)
    params = {n: rng.standard_normal(s, dtype=np.float32) for n, s in shapes}
    grads = {n: rng.standard_normal(s, dtype=np.float32) * 1e-2 for n, s in shapes}
    flat = fastoptim.flatten(params)
    flat_grads = flat.zeros_like(prefix="d")
    for n, g in grads.items():
        flat_grads["d" + n] = g
    made = {}
    for label, options in (("fastoptim", {}), ("fastoptim + EMA", {"ema_decay": DECAY})):
        opt = fastoptim.AdamW(flat.copy(), lr=LR, nonfinite="ignore", **options)
        made[label] = lambda opt=opt: opt.step(flat_grads)

    def module_with_grads():
        module = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.tensor(params[n].copy())) for n, _ in shapes]
        )
        for tensor, (n, _) in zip(module, shapes, strict=True):
            tensor.grad = torch.tensor(grads[n])
        return module

    module = module_with_grads()
    ours = fastoptim_torch.AdamW(module.parameters(), lr=LR, nonfinite="ignore", ema_decay=DECAY)
    made["fastoptim.torch + EMA"] = ours.step
    module = module_with_grads()
    fused = torch.optim.AdamW(module.parameters(), lr=LR, fused=True)
    made["torch fused"] = fused.step
    module = module_with_grads()
    fused_pair = torch.optim.AdamW(module.parameters(), lr=LR, fused=True)
    averaged = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(DECAY))

    def torch_pair(optimizer=fused_pair, averaged=averaged, module=module):
        optimizer.step()
        averaged.update_parameters(module)

    made["torch fused + AveragedModel"] = torch_pair
    roof = kernels.roof.FOR_STATES[3]  # 9 elements: AMSGrad's traffic, the EMA's
    arrays = [flat.copy().buffer for _ in range(5)]
    compiled = roof.variant_for(arrays[0])
    made["roof (36 B)"] = lambda: compiled(*arrays)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--models", default="1e6,1e7,1e8,linear-many")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    fastoptim.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    print(
        "| model | rounds | roof (36 B) | fastoptim (no EMA) | fastoptim + EMA (% of roof) | "
        "fastoptim.torch + EMA | torch fused | torch fused + AveragedModel | "
        "fused EMA vs torch's pair |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        steps = contenders(model_shapes(model))
        ms = interleaved_medians(steps, args.rounds)
        pair = ms["torch fused + AveragedModel"]
        print(
            f"| {model} | {args.rounds} | {ms['roof (36 B)']:.3g} | {ms['fastoptim']:.3g} | "
            f"{ms['fastoptim + EMA']:.3g} ({100 * ms['roof (36 B)'] / ms['fastoptim + EMA']:.0f}%)"
            f" | {ms['fastoptim.torch + EMA']:.3g} | {ms['torch fused']:.3g} | {pair:.3g} | "
            f"{pair / ms['fastoptim + EMA']:.2f}x |"
        )


if __name__ == "__main__":
    main()
