"""Momentum in the course's moving-average form."""

from __future__ import annotations

from fastoptim import kernels
from fastoptim.kernels import MomentumScalars, new_record
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_beta
from fastoptim.optim.optimizer import Optimizer


def momentum_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> MomentumScalars:
    """Kernel scalars ``(grad_scale, beta, 1 - beta, lr)``; ``1 - beta`` is taken in float64.
    ``grad_scale`` (clipping) multiplies each gradient first; at 1 that is exact. The course
    form has no weight decay."""
    return new_record(MomentumScalars, (grad_scale, settings.beta, 1.0 - settings.beta, lr))


MOMENTUM = Declaration(
    name="Momentum",
    hyperparameters=(
        shared.learning_rate(0.01),
        HyperParameter("beta", 0.9, check_beta, "Momentum coefficient in [0, 1)."),
        *shared.STORAGE,
    ),
    states=lambda s: ("velocity",),
    kernel=lambda s: kernels.momentum_update,
    scalars=momentum_scalars,
    group_options=("lr",),  # the course form has no weight decay
)


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

    {parameters}

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

    declaration = MOMENTUM
