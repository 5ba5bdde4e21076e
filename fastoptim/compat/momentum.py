"""Course drop-ins for Momentum: same names, arguments and return values as the course."""

from __future__ import annotations

import functools
from collections.abc import Mapping, MutableMapping

import numpy as np

from fastoptim import kernels
from fastoptim.compat.course_dicts import course_segments, course_zeros
from fastoptim.optim.hyperparameters import check_beta, check_learning_rate
from fastoptim.optim.momentum import MOMENTUM, momentum_scalars


@functools.lru_cache(maxsize=8)
def _scalars(beta: float, learning_rate: float):
    """The kernel's scalars for the course's arguments: Momentum's do not depend on the step,
    and a course run keeps them fixed, so each pair is worked out once."""
    return momentum_scalars(MOMENTUM.settings(beta=beta), 1, learning_rate, 0.0, 1.0)


def initialize_velocity(parameters: Mapping[str, np.ndarray]) -> MutableMapping[str, np.ndarray]:
    """Zero velocity ``v['dW1'], v['db1'], ...`` shaped like each parameter.

    Returns a dict for a dict and a FlatParams (same layout) for a FlatParams.
    """
    return course_zeros(parameters)


def update_parameters_with_momentum(
    parameters: MutableMapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    v: MutableMapping[str, np.ndarray],
    beta: float,
    learning_rate: float,
) -> tuple[MutableMapping[str, np.ndarray], MutableMapping[str, np.ndarray]]:
    r"""One Momentum step, in place: ``v = beta*v + (1-beta)*grad; W = W - learning_rate*v``.

    Parameters
    ----------
    parameters : dict or FlatParams
        ``'W1', 'b1', ...``; updated in place.
    grads : dict or FlatParams
        ``'dW1', 'db1', ...``; other keys (``'dA1'``, ``'dZ1'``) are ignored.
    v : dict or FlatParams
        Velocity keyed like ``grads``; updated in place.
    beta : float
        Momentum coefficient in [0, 1).
    learning_rate : float
        Finite and >= 0.

    Returns
    -------
    (parameters, v)
        The same objects that were passed in.
    """
    beta = check_beta(beta, "beta")
    learning_rate = check_learning_rate(learning_rate, "learning_rate")
    segments = course_segments(parameters, grads, [(v, "v")])
    kernels.momentum_update.run(segments, _scalars(beta, learning_rate))
    return parameters, v
