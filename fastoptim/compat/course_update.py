"""CourseUpdate: drive one course optimizer by name, with its state and step counter.

Works with any module that has the course functions: ``fastoptim`` itself or
``fastoptim.reference``. The demo and the bench use it to run both side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from types import ModuleType

import numpy as np

ALGORITHMS = ("gd", "momentum", "adam")


class CourseUpdate:
    """``step(grads)`` calls ``module.update_parameters_with_<algorithm>`` on ``parameters``
    with the state made by the module's initialiser and ``t`` counted from 1."""

    def __init__(
        self,
        module: ModuleType,
        algorithm: str,
        parameters: MutableMapping[str, np.ndarray],
        learning_rate: float,
        beta: float = 0.9,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")
        self.module, self.algorithm, self.parameters = module, algorithm, parameters
        self.learning_rate, self.beta, self.t = learning_rate, beta, 0
        if algorithm == "momentum":
            self.v = module.initialize_velocity(parameters)
        elif algorithm == "adam":
            self.v, self.s = module.initialize_adam(parameters)

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        self.t += 1
        if self.algorithm == "momentum":
            self.module.update_parameters_with_momentum(
                self.parameters, grads, self.v, self.beta, self.learning_rate
            )
        elif self.algorithm == "adam":
            self.module.update_parameters_with_adam(
                self.parameters, grads, self.v, self.s, self.t, self.learning_rate
            )
        else:
            self.module.update_parameters_with_gd(self.parameters, grads, self.learning_rate)
