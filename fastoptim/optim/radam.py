"""RAdam (Liu et al., 2020, "On the Variance of the Adaptive Learning Rate and Beyond"), as
torch.optim.RAdam."""

from __future__ import annotations

import math

from fastoptim.kernels import new_record
from fastoptim.kernels.radam import RAdamScalars, radam_update
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.adam_variants import (
    BETAS,
    DECOUPLED_WEIGHT_DECAY,
    WEIGHT_DECAY,
    int8_bound,
    moment_scalars,
)
from fastoptim.optim.declaration import Declaration, Settings
from fastoptim.optim.optimizer import Optimizer

# the rectification applies once the variance's degrees of freedom exceed this (torch's rule)
TRACTABLE = 5.0


def rectification(beta2: float, t: int) -> float | None:
    r"""The variance rectification :math:`r_t` of step :math:`t`, None while
    :math:`\rho_t \le 5` (the first steps: then the step is momentum alone).

    :math:`\rho_\infty = 2 / (1 - \beta_2) - 1`,
    :math:`\rho_t = \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t)`,
    :math:`r_t = \sqrt{(\rho_t - 4)(\rho_t - 2)\rho_\infty /
    ((\rho_\infty - 4)(\rho_\infty - 2)\rho_t)}`.
    """
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * t * beta2**t / (1.0 - beta2**t)
    if not rho_t > TRACTABLE:
        return None
    return math.sqrt(
        (rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
    )


def radam_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> RAdamScalars:
    """Kernel scalars for step ``t``: whether the step is rectified, and its size,
    ``lr r_t sqrt(1 - beta2**t) / (1 - beta1**t)`` (rectified) or ``lr / (1 - beta1**t)``."""
    beta1, beta2 = settings.betas
    rect = rectification(beta2, t)
    bias_correction1 = 1.0 - beta1**t
    if rect is None:
        step_size = lr / bias_correction1
    else:
        step_size = lr * rect * math.sqrt(1.0 - beta2**t) / bias_correction1
    return new_record(
        RAdamScalars,
        (
            *moment_scalars(settings, lr, weight_decay, grad_scale),
            0.0 if rect is None else 1.0,
            step_size,
            settings.eps,
            int8_bound(settings, t),
        ),
    )


RADAM = Declaration(
    name="RAdam",
    hyperparameters=(
        shared.learning_rate(1e-3),
        BETAS,
        shared.epsilon(1e-8),
        WEIGHT_DECAY,
        DECOUPLED_WEIGHT_DECAY,
        shared.MAXIMIZE,
        *shared.STORAGE,
    ),
    states=lambda s: ("exp_avg", "exp_avg_sq"),
    kernel=lambda s: radam_update,
    scalars=radam_scalars,
)


class RAdam(Optimizer):
    r"""RAdam in ``torch.optim.RAdam``'s form.

    For each element, with gradient :math:`g_t` at step :math:`t = 1, 2, \dots` (weight
    decay as in :class:`NAdam`):

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \theta_t &= \theta_{t-1} - \frac{\eta\, m_t}{1 - \beta_1^t} \cdot
            \begin{cases}
              r_t \sqrt{1 - \beta_2^t} / (\sqrt{v_t} + \epsilon) & \rho_t > 5 \\
              1 & \text{otherwise}
            \end{cases}

    with :math:`\rho_t` and :math:`r_t` as in :func:`rectification` (scalars of the step).

    {parameters}

    References
    ----------
    L. Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.RAdam({"w": np.ones(2)}, lr=0.1)
    >>> opt.step({"w": np.full(2, 0.5)})   # first steps: momentum alone, lr * m_hat
    >>> opt.params["w"]
    array([0.95, 0.95])
    """

    declaration = RADAM
