"""Course drop-ins for Adam: same names, arguments and return values as the course."""

from __future__ import annotations

import functools
from collections.abc import Mapping, MutableMapping

import numpy as np

from fastoptim import kernels
from fastoptim.compat.course_dicts import course_segments, course_zeros
from fastoptim.optim.adam import ADAM, adam_scalars
from fastoptim.optim.hyperparameters import (
    check_beta,
    check_epsilon,
    check_learning_rate,
    check_step,
)


@functools.lru_cache(maxsize=8)
def _settings(beta1: float, beta2: float, epsilon: float):
    """Adam's settings record for the course's arguments (a course run keeps them fixed)."""
    return ADAM.settings(betas=(beta1, beta2), eps=epsilon)


def initialize_adam(
    parameters: Mapping[str, np.ndarray],
) -> tuple[MutableMapping[str, np.ndarray], MutableMapping[str, np.ndarray]]:
    """Zero first and second moments ``(v, s)``, each keyed ``'dW1', 'db1', ...``.

    Returns dicts for a dict and FlatParams (same layout) for a FlatParams.
    """
    return course_zeros(parameters), course_zeros(parameters)


def update_parameters_with_adam(
    parameters: MutableMapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    v: MutableMapping[str, np.ndarray],
    s: MutableMapping[str, np.ndarray],
    t: int,
    learning_rate: float = 0.01,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> tuple[
    MutableMapping[str, np.ndarray],
    MutableMapping[str, np.ndarray],
    MutableMapping[str, np.ndarray],
]:
    r"""One Adam step, in place, dividing by the square root of the *bias-corrected* ``s``.

    .. math::

        v &= \beta_1 v + (1 - \beta_1)\, g, \qquad
        s = \beta_2 s + (1 - \beta_2)\, g^2 \\
        W &= W - \alpha\, \frac{v / (1 - \beta_1^t)}{\sqrt{s / (1 - \beta_2^t)} + \epsilon}

    Parameters
    ----------
    parameters : dict or FlatParams
        ``'W1', 'b1', ...``; updated in place.
    grads : dict or FlatParams
        ``'dW1', 'db1', ...``; other keys (``'dA1'``, ``'dZ1'``) are ignored.
    v, s : dict or FlatParams
        First and second moments keyed like ``grads``; updated in place.
    t : int
        Adam's step number, starting at 1.
    learning_rate, beta1, beta2, epsilon : float
        As in the course: 0.01, 0.9, 0.999, 1e-8.

    Returns
    -------
    (parameters, v, s)
        The same objects that were passed in.
    """
    t = check_step(t, "t")
    learning_rate = check_learning_rate(learning_rate, "learning_rate")
    beta1 = check_beta(beta1, "beta1")
    beta2 = check_beta(beta2, "beta2")
    epsilon = check_epsilon(epsilon, "epsilon")
    segments = course_segments(parameters, grads, [(v, "v"), (s, "s")])
    scalars = adam_scalars(_settings(beta1, beta2, epsilon), t, learning_rate, 0.0, 1.0)
    kernels.adam_update.run(segments, scalars)
    return parameters, v, s
