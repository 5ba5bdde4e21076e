"""The two-moons data set, generated with numpy (no downloads)."""

from __future__ import annotations

import numpy as np


def two_moons(
    n_samples: int = 300, noise: float = 0.2, seed: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, course layout: ``X`` is (2, m), ``Y`` is (1, m) of 0/1."""
    rng = np.random.default_rng(seed)
    n_upper = n_samples // 2
    n_lower = n_samples - n_upper
    angle_upper = np.linspace(0.0, np.pi, n_upper)
    angle_lower = np.linspace(0.0, np.pi, n_lower)
    upper = np.stack([np.cos(angle_upper), np.sin(angle_upper)])
    lower = np.stack([1.0 - np.cos(angle_lower), 0.5 - np.sin(angle_lower)])
    X = np.concatenate([upper, lower], axis=1) + noise * rng.standard_normal((2, n_samples))
    Y = np.concatenate([np.zeros(n_upper), np.ones(n_lower)]).reshape(1, n_samples)
    order = rng.permutation(n_samples)
    return X[:, order], Y[:, order]


def mini_batches(X: np.ndarray, Y: np.ndarray, size: int, rng: np.random.Generator):
    """Shuffled mini-batches ``(X_batch, Y_batch)`` covering every sample once."""
    order = rng.permutation(X.shape[1])
    for start in range(0, X.shape[1], size):
        chosen = order[start : start + size]
        yield X[:, chosen], Y[:, chosen]
