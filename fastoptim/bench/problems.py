"""What the bench measures: an algorithm, a model (named layer shapes) and a dtype."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fastoptim.bench.algorithms import ALGORITHMS, BenchAlgorithm
from fastoptim.optim import state_dtypes


@dataclass(frozen=True)
class Problem:
    algorithm: str  # a key of fastoptim.bench.algorithms.ALGORITHMS
    model: str  # "1e6", "10000x1000", "course"
    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    dtype: np.dtype
    threads: int
    state_dtype: str | None = None  # None: the parameters' dtype (torch's)

    @property
    def elements(self) -> int:
        return sum(math.prod(shape) for _, shape in self.shapes)

    @property
    def spec(self) -> BenchAlgorithm:
        return ALGORITHMS[self.algorithm]

    @property
    def state_itemsize(self) -> int:
        """Bytes per element of each state buffer (2 for bfloat16 state)."""
        if self.state_dtype is None:
            return self.dtype.itemsize
        stored = state_dtypes.stored_dtype(self.state_dtype)
        return (stored or np.dtype(self.state_dtype)).itemsize

    @property
    def low_precision(self) -> bool:
        """Whether the state is stored in fewer bits than the parameters."""
        return self.state_itemsize < self.dtype.itemsize

    @property
    def bytes_per_step(self) -> int:
        """Read p, g and each state; write p and each state (a step of several passes:
        what its ``traffic`` says)."""
        if self.spec.traffic is not None:
            moved = sum(self.spec.traffic(shape) * math.prod(shape) for _, shape in self.shapes)
            return moved * self.dtype.itemsize
        n_state = self.spec.n_state
        per_element = 3 * self.dtype.itemsize + 2 * n_state * self.state_itemsize
        return per_element * self.elements

    def options(self) -> dict[str, str]:
        """The options fastoptim's rows are made with (the state dtype, when one is set)."""
        return {} if self.state_dtype is None else {"state_dtype": self.state_dtype}

    def inputs(self, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Parameters keyed ``'W1'`` and small gradients keyed ``'dW1'``, in ``dtype``."""
        rng = np.random.default_rng(seed)
        parameters, grads = {}, {}
        for name, shape in self.shapes:
            parameters[name] = rng.standard_normal(shape, dtype=np.float32).astype(self.dtype)
            grads["d" + name] = (rng.standard_normal(shape, dtype=np.float32) * 1e-2).astype(
                self.dtype
            )
        return parameters, grads


# torch models (nn.Sequential of Linear layers), by name: (number of layers, width)
TORCH_MODELS = {"linear-10m": (1, 3162), "linear-100m": (10, 3162), "linear-many": (2000, 64)}


def model_shapes(model: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Layer shapes for a model name: a size (``1e6``: one weight and a 1,000-element bias),
    ``LAYERSxSIZE`` (many equal layers), ``course`` (the course's [2, 5, 2, 1] network), or
    a torch model of ``TORCH_MODELS`` (its Linear layers' weights and biases, in order)."""
    if model in TORCH_MODELS:
        layers, width = TORCH_MODELS[model]
        return tuple(
            (f"{layer}.{kind}", (width, width) if kind == "weight" else (width,))
            for layer in range(layers)
            for kind in ("weight", "bias")
        )
    if model == "course":
        dims = [2, 5, 2, 1]
        shapes = []
        for layer in range(1, len(dims)):
            shapes.append((f"W{layer}", (dims[layer], dims[layer - 1])))
            shapes.append((f"b{layer}", (dims[layer], 1)))
        return tuple(shapes)
    if "x" in model:
        layers, size = (int(float(part)) for part in model.split("x"))
        return tuple((f"W{i}", (size,)) for i in range(1, layers + 1))
    elements = int(float(model))
    bias = min(1000, elements // 10)
    return (("W1", (elements - bias,)), ("b1", (bias,)))
