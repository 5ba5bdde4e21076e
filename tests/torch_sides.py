"""What the torch client-code tests share: generated batches, weights, the distance between
two runs and the bounds it is held to (see test_torch_optim_db.py for why these bounds)."""

from __future__ import annotations

import torch

FLOAT64_BOUND = 1e-10  # relative to the weights' scale, after every step
FLOAT32_FLOOR_PER_STEP = 8 * 2.0**-24  # a few float32 roundings per step


def batches(dtype: torch.dtype, count: int, seed: int = 3) -> list[tuple[torch.Tensor, ...]]:
    """``count`` batches of 16 inputs of 5 features and a smooth target, made in float64."""
    generator = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(count):
        x = torch.randn(16, 5, generator=generator, dtype=torch.float64)
        data.append((x.to(dtype), torch.sin(x.sum(1, keepdim=True)).to(dtype)))
    return data


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest difference between two lists of weights, relative to the first's scale."""
    scale = max(float(w.abs().max()) for w in a)
    largest = max(float((x.double() - y.double()).abs().max()) for x, y in zip(a, b, strict=True))
    return largest / scale
