"""Course drop-in for plain gradient descent."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import numpy as np

from fastoptim import kernels
from fastoptim.compat.course_dicts import course_segments
from fastoptim.optim.hyperparameters import check_learning_rate


def update_parameters_with_gd(
    parameters: MutableMapping[str, np.ndarray],
    grads: Mapping[str, np.ndarray],
    learning_rate: float,
) -> MutableMapping[str, np.ndarray]:
    """One gradient-descent step, in place: ``W = W - learning_rate * dW``.

    Returns the same ``parameters`` object that was passed in.
    """
    learning_rate = check_learning_rate(learning_rate, "learning_rate")
    segments = course_segments(parameters, grads, [])
    kernels.gd_update.run(segments, (learning_rate,))  # GDScalars' one field
    return parameters
