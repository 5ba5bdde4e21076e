"""Train the demo network with one optimizer through fastoptim or through the reference."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from types import ModuleType

import numpy as np

import fastoptim
from fastoptim import reference
from fastoptim.compat.course_update import CourseUpdate
from fastoptim.demo.data import mini_batches
from fastoptim.demo.network import (
    accuracy,
    backward_propagation,
    compute_cost,
    forward_propagation,
    initialize_parameters,
)

LAYER_DIMS = [2, 5, 2, 1]
LEARNING_RATE = {"gd": 0.0007, "momentum": 0.0007, "adam": 0.0007}


@dataclass
class Result:
    optimizer: str
    implementation: str
    cost: float
    accuracy: float
    update_seconds: list[float]
    step_seconds: list[float]


def train(
    X,
    Y,
    optimizer: str,
    implementation: str,
    epochs: int,
    on_epoch=None,
    layer_dims: list[int] = LAYER_DIMS,
    learning_rate: float | None = None,
    flat: bool = True,
) -> Result:
    """Mini-batch training as the course does it; the update is timed on its own.

    ``flat``: fastoptim's parameters in one buffer and backward writing into gradient views
    (one kernel call per update: what small models need); else the course's plain dicts
    (one kernel call per layer, and no copy of the gradients: what large layers want)."""
    parameters: MutableMapping[str, np.ndarray]
    grads: MutableMapping[str, np.ndarray]
    module: ModuleType
    if implementation == "fastoptim" and not flat:
        parameters, grads, module = initialize_parameters(layer_dims), {}, fastoptim
    elif implementation == "fastoptim":
        parameters = fastoptim.flatten(initialize_parameters(layer_dims))
        grads = parameters.zeros_like(prefix="d")  # backward fills these views: one kernel per step
        module = fastoptim
    else:
        parameters, grads, module = initialize_parameters(layer_dims), {}, reference
    rate = LEARNING_RATE[optimizer] if learning_rate is None else learning_rate
    course = CourseUpdate(module, optimizer, parameters, rate)
    rng = np.random.default_rng(10)
    update_seconds, step_seconds = [], []
    cost = float("nan")
    for _ in range(epochs):
        costs = []
        for X_batch, Y_batch in mini_batches(X, Y, 64, rng):
            start = time.perf_counter()
            A3, cache = forward_propagation(X_batch, parameters)
            costs.append(compute_cost(A3, Y_batch) * X_batch.shape[1])
            backward_propagation(X_batch, Y_batch, parameters, cache, grads)
            before_update = time.perf_counter()
            course.step(grads)
            end = time.perf_counter()
            update_seconds.append(end - before_update)
            step_seconds.append(end - start)
        cost = sum(costs) / X.shape[1]
        if on_epoch is not None:
            on_epoch()
    return Result(
        optimizer, implementation, cost, accuracy(X, Y, parameters), update_seconds, step_seconds
    )
