"""Adamax (Kingma & Ba, 2015, section 7.1), as torch.optim.Adamax."""

from __future__ import annotations

import math

from fastoptim.kernels import new_record
from fastoptim.kernels.adamax import AdamaxScalars, adamax_update
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.adam import BOUND_SLACK
from fastoptim.optim.adam_variants import BETAS
from fastoptim.optim.declaration import Declaration, Settings
from fastoptim.optim.optimizer import Optimizer


def infinity_ratio_bound(beta1: float, beta2: float, t: int) -> float:
    r"""The largest :math:`|m_t| / u_t` Adamax's exact states can reach at step :math:`t`.

    :math:`u_t \ge \beta_2^j (|g_{t-j}| + \epsilon)` for every :math:`j < t`, so
    :math:`|m_t| \le (1-\beta_1) \sum_{j<t} \beta_1^j |g_{t-j}|
    \le (1-\beta_1) \sum_{j<t} (\beta_1/\beta_2)^j\, u_t`. int8 state clamps :math:`|m|`
    to this times :math:`u`, so a step moves at most :math:`\eta` times it over
    :math:`1 - \beta_1^t` (about 1.01 for the default betas).
    """
    if beta1 == 0.0:
        return 1.0
    if beta2 == 0.0:
        return math.inf
    ratio = beta1 / beta2
    try:
        total = float(t) if ratio == 1.0 else (1.0 - ratio**t) / (1.0 - ratio)
    except OverflowError:  # beta1 > beta2: the bound grows without limit
        return math.inf
    return (1.0 - beta1) * total


def adamax_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> AdamaxScalars:
    """Kernel scalars for step ``t``: the bias-corrected rate ``lr / (1 - beta1**t)``."""
    beta1, beta2 = settings.betas
    int8 = settings.state_dtype == "int8"
    return new_record(
        AdamaxScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            weight_decay,
            beta1,
            1.0 - beta1,
            beta2,
            settings.eps,
            lr / (1.0 - beta1**t),
            BOUND_SLACK * infinity_ratio_bound(beta1, beta2, t) if int8 else math.inf,
        ),
    )


ADAMAX = Declaration(
    name="Adamax",
    hyperparameters=(
        shared.learning_rate(2e-3),
        BETAS,
        shared.epsilon(1e-8),
        shared.L2_WEIGHT_DECAY,
        shared.MAXIMIZE,
        *shared.STORAGE,
    ),
    states=lambda s: ("exp_avg", "exp_inf"),
    kernel=lambda s: adamax_update,
    scalars=adamax_scalars,
)


class Adamax(Optimizer):
    r"""Adamax in ``torch.optim.Adamax``'s form: Adam with the infinity norm.

    For each element, with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\, \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon) \\
        \theta_t &= \theta_{t-1} - \frac{\eta}{1 - \beta_1^t} \cdot \frac{m_t}{u_t}

    :math:`m` and :math:`u` are ``state['exp_avg']`` and ``state['exp_inf']``.

    {parameters}

    References
    ----------
    D. P. Kingma and J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, 7.1.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.Adamax({"w": np.ones(2)}, lr=0.1, eps=1e-12)
    >>> opt.step({"w": np.full(2, 0.5)})   # m_hat / u = 1 on the first step
    >>> opt.params["w"]
    array([0.9, 0.9])
    """

    declaration = ADAMAX
