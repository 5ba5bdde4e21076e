"""Momentum in the course's moving-average form."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import numpy as np

from fastoptim import kernels
from fastoptim.flat import FlatParams
from fastoptim.optim.hyperparameters import check_beta, check_lr_or_schedule
from fastoptim.optim.optimizer import Optimizer


def momentum_scalars(beta: float, lr: float) -> tuple[float, ...]:
    """Kernel scalars ``(beta, 1 - beta, lr)``; ``1 - beta`` is taken in float64."""
    return (beta, 1.0 - beta, lr)


class Momentum(Optimizer):
    r"""Gradient descent with momentum, as the classic course defines it.

    For each element, with gradient :math:`g_t` at step :math:`t`:

    .. math::

        v_t &= \beta\, v_{t-1} + (1 - \beta)\, g_t \\
        \theta_t &= \theta_{t-1} - \eta\, v_t

    ====================  =====================================================
    :math:`\theta`        parameters (``params``)
    :math:`v`             velocity, ``state['velocity']``, starts at zero
    :math:`\eta`          ``lr``
    :math:`\beta`         ``beta``
    ====================  =====================================================

    This is the moving-average form from step 1. It is not ``torch.optim.SGD`` with
    momentum, which starts its buffer at :math:`g_1` and scales by ``1 - dampening``.

    Parameters
    ----------
    params : FlatParams or dict of arrays
        A dict is flattened into one buffer and its entries are rebound to the live views.
    lr : float
        Learning rate, finite and >= 0.
    beta : float
        Momentum coefficient in [0, 1).
    nonfinite, max_consecutive_skips
        What a step does with NaN or Inf in the gradients: ``'skip'`` (default), ``'raise'``
        or ``'ignore'``; see :class:`fastoptim.optim.nonfinite.NonFiniteGuard`.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> params = {"W1": np.ones((2, 2)), "b1": np.zeros((2, 1))}
    >>> opt = fastoptim.Momentum(params, lr=0.1, beta=0.9)
    >>> opt.step({"dW1": np.ones((2, 2)), "db1": np.ones((2, 1))})
    >>> params["W1"]   # 1 - 0.1 * (0.1 * 1)
    array([[0.99, 0.99],
           [0.99, 0.99]])
    """

    kernel = kernels.momentum
    state_names = ("velocity",)

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        lr: float = 0.01,
        beta: float = 0.9,
        *,
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
    ) -> None:
        self._set_hyperparameters(lr=lr, beta=beta)
        super().__init__(params, nonfinite, max_consecutive_skips)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self._lr_setting(), "beta": self.beta}

    def _set_hyperparameters(self, lr: float, beta: float) -> None:
        lr, beta = check_lr_or_schedule(lr, getattr(self, "t", 0) + 1), check_beta(beta, "beta")
        self.lr, self.beta = lr, beta

    def _scalars(self, t: int) -> tuple:
        return momentum_scalars(self.beta, self.lr)
