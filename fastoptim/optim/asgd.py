"""ASGD (averaged stochastic gradient descent: Polyak & Juditsky, 1992), as torch.optim.ASGD."""

from __future__ import annotations

import numpy as np

from fastoptim.kernels import new_record
from fastoptim.kernels.asgd import ASGDScalars, asgd_update
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_finite, check_nonnegative
from fastoptim.optim.optimizer import Optimizer


def eta_after(settings: Settings, lr: float, t: int) -> float:
    r"""The step size torch saves after step ``t`` (0: before the first),
    :math:`\eta_{t+1} = \eta / (1 + \lambda \eta t)^\alpha`, rounded to float32 as torch
    keeps ``state['eta']``."""
    return float(np.float32(lr / (1.0 + settings.lambd * lr * t) ** settings.alpha))


def mu_after(settings: Settings, t: int) -> float:
    r"""The averaging weight torch saves after step ``t`` (0: before the first),
    :math:`\mu_{t+1} = 1 / \max(1, t - t_0)` (1 before the first step), in float32."""
    if t == 0:
        return 1.0
    return float(np.float32(1.0 / max(1.0, t - settings.t0)))


def asgd_scalars(
    settings: Settings,
    t: int,
    lr: float,
    weight_decay: float,
    grad_scale: float,
    eta: float | None = None,
    mu: float | None = None,
) -> ASGDScalars:
    """Kernel scalars for step ``t``: ``eta`` and ``mu`` as torch saved them after step
    ``t - 1``, by default from this step's ``lr`` (torch's from the previous step's: the
    same while the learning rate does not change; fastoptim.torch passes the saved ones)."""
    if eta is None:
        eta = eta_after(settings, lr, t - 1)
    if mu is None:
        mu = mu_after(settings, t - 1)
    return new_record(
        ASGDScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            weight_decay,
            1.0 - settings.lambd * eta,
            eta,
            mu,
        ),
    )


ASGD_DECLARATION = Declaration(
    name="ASGD",
    hyperparameters=(
        shared.learning_rate(1e-2),
        HyperParameter(
            "lambd", 1e-4, check_nonnegative, "Decay term :math:`\\lambda` >= 0 of the step size."
        ),
        HyperParameter(
            "alpha", 0.75, check_nonnegative, "Power :math:`\\alpha` >= 0 of the step size's decay."
        ),
        HyperParameter(
            "t0", 1e6, check_finite, "Step :math:`t_0` after which the average starts moving."
        ),
        shared.L2_WEIGHT_DECAY,
        shared.MAXIMIZE,
    ),
    states=lambda s: ("ax",),
    kernel=lambda s: asgd_update,
    scalars=asgd_scalars,
)


class ASGD(Optimizer):
    r"""ASGD in ``torch.optim.ASGD``'s form: SGD with a decaying step size and an average
    of the iterates (``state['ax']``, the weights to evaluate).

    For each element, with gradient :math:`g_t` (negated with ``maximize``) at step
    :math:`t = 1, 2, \dots`:

    .. math::

        \eta_t &= \eta / (1 + \lambda \eta (t - 1))^{\alpha}, \qquad
        \mu_t = 1 / \max(1, t - 1 - t_0) \quad (\mu_1 = 1) \\
        \theta_t &= (1 - \lambda \eta_t)\, \theta_{t-1}
            - \eta_t (g_t + w\, \theta_{t-1}) \\
        \bar\theta_t &= \bar\theta_{t-1} + \mu_t (\theta_t - \bar\theta_{t-1})
            \quad (\bar\theta_t = \theta_t \text{ while } \mu_t = 1)

    :math:`\eta_t` and :math:`\mu_t` are rounded to float32, as torch keeps them. torch
    computes :math:`\eta_t` after step :math:`t - 1` from that step's learning rate; here
    it comes from step :math:`t`'s (the same unless a schedule changes it;
    ``fastoptim.torch.ASGD`` keeps torch's order). The average is the model itself, so it
    is kept in the parameters' dtype (no ``state_dtype``).

    {parameters}

    References
    ----------
    B. T. Polyak and A. B. Juditsky, "Acceleration of stochastic approximation by
    averaging", SIAM J. Control Optim. 30(4), 1992.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.ASGD({"w": np.ones(2)}, lr=0.1, lambd=0.0)
    >>> opt.step({"w": np.full(2, 0.5)})
    >>> opt.params["w"], opt.state_values("ax")["w"]   # averaged from t0 on: a copy
    (array([0.95, 0.95]), array([0.95, 0.95]))
    """

    declaration = ASGD_DECLARATION
