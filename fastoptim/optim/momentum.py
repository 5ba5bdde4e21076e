"""Momentum in the course's moving-average form."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from fastoptim import kernels
from fastoptim.flat import FlatParams
from fastoptim.optim.groups import Group
from fastoptim.optim.hyperparameters import check_beta, check_lr_or_schedule, check_max_norm
from fastoptim.optim.optimizer import Optimizer


def momentum_scalars(beta: float, lr: float, grad_scale: float = 1.0) -> tuple[float, ...]:
    """Kernel scalars ``(grad_scale, beta, 1 - beta, lr)``; ``1 - beta`` is taken in float64.
    ``grad_scale`` (clipping) multiplies each gradient first; at 1 that is exact."""
    return (grad_scale, beta, 1.0 - beta, lr)


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
    max_grad_norm : float or None
        Clip by global norm before each step, as in :class:`Adam`: :math:`g_t` is
        scaled by ``min(1, max_grad_norm / (norm + 1e-6))`` before it enters :math:`v_t`.
    groups : list of Group, optional
        Layers with their own ``lr`` or ``weight_decay``, or frozen; see :class:`fastoptim.Group`.
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
    group_options = ("lr",)  # the course form has no weight decay

    def __init__(
        self,
        params: FlatParams | MutableMapping[str, np.ndarray],
        lr: float = 0.01,
        beta: float = 0.9,
        *,
        max_grad_norm: float | None = None,
        nonfinite: str = "skip",
        max_consecutive_skips: int | None = 10,
        groups: Sequence[Group | Mapping[str, Any]] | None = None,
    ) -> None:
        self._set_hyperparameters(lr=lr, beta=beta, max_grad_norm=max_grad_norm)
        super().__init__(params, nonfinite, max_consecutive_skips, groups)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self._lr_setting(), "beta": self.beta, "max_grad_norm": self.max_grad_norm}

    def _set_hyperparameters(
        self, lr: float, beta: float, max_grad_norm: float | None = None
    ) -> None:
        lr, beta = check_lr_or_schedule(lr, getattr(self, "t", 0) + 1), check_beta(beta, "beta")
        max_norm = check_max_norm(max_grad_norm)
        self.lr, self.beta, self.max_grad_norm = lr, beta, max_norm

    def _scalars(self, t: int, lr: float, weight_decay: float) -> tuple[float, ...]:
        return momentum_scalars(self.beta, lr, self._grad_scale)
