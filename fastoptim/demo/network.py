"""A course-style 3-layer network: LINEAR -> RELU -> LINEAR -> RELU -> LINEAR -> SIGMOID."""

from __future__ import annotations

from collections.abc import MutableMapping

import numpy as np


def initialize_parameters(layer_dims: list[int], seed: int = 3) -> dict[str, np.ndarray]:
    """He initialisation, keyed ``'W1', 'b1', ...`` as the course keys them."""
    rng = np.random.default_rng(seed)
    parameters = {}
    for layer in range(1, len(layer_dims)):
        fan_in = layer_dims[layer - 1]
        parameters[f"W{layer}"] = rng.standard_normal((layer_dims[layer], fan_in)) * np.sqrt(
            2.0 / fan_in
        )
        parameters[f"b{layer}"] = np.zeros((layer_dims[layer], 1))
    return parameters


def forward_propagation(X, parameters):
    """Activations of the three layers; returns ``(A3, cache)``."""
    Z1 = parameters["W1"] @ X + parameters["b1"]
    A1 = np.maximum(Z1, 0.0)
    Z2 = parameters["W2"] @ A1 + parameters["b2"]
    A2 = np.maximum(Z2, 0.0)
    Z3 = parameters["W3"] @ A2 + parameters["b3"]
    A3 = 1.0 / (1.0 + np.exp(-Z3))
    return A3, (Z1, A1, Z2, A2, A3)


def compute_cost(A3, Y) -> float:
    """Mean cross-entropy."""
    eps = 1e-12  # keeps log finite when a prediction saturates
    return float(-np.mean(Y * np.log(A3 + eps) + (1.0 - Y) * np.log(1.0 - A3 + eps)))


def backward_propagation(X, Y, parameters, cache, grads: MutableMapping) -> MutableMapping:
    """Write ``dW1, db1, ...`` into ``grads`` (a dict, or a FlatParams whose views they fill)."""
    Z1, A1, Z2, A2, A3 = cache
    m = X.shape[1]
    dZ3 = A3 - Y
    grads["dW3"] = 1.0 / m * dZ3 @ A2.T
    grads["db3"] = 1.0 / m * np.sum(dZ3, axis=1, keepdims=True)
    dZ2 = (parameters["W3"].T @ dZ3) * (Z2 > 0)
    grads["dW2"] = 1.0 / m * dZ2 @ A1.T
    grads["db2"] = 1.0 / m * np.sum(dZ2, axis=1, keepdims=True)
    dZ1 = (parameters["W2"].T @ dZ2) * (Z1 > 0)
    grads["dW1"] = 1.0 / m * dZ1 @ X.T
    grads["db1"] = 1.0 / m * np.sum(dZ1, axis=1, keepdims=True)
    return grads


def accuracy(X, Y, parameters) -> float:
    A3, _ = forward_propagation(X, parameters)
    return float(np.mean((A3 > 0.5) == (Y > 0.5)))
