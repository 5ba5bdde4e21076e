"""Adadelta (Zeiler, 2012), as torch.optim.Adadelta."""

from __future__ import annotations

from typing import Any

from fastoptim.kernels import new_record
from fastoptim.kernels.adadelta import AdadeltaScalars, adadelta_update
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_fraction
from fastoptim.optim.optimizer import Optimizer


def adadelta_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> AdadeltaScalars:
    """Kernel scalars: ``1 - rho`` in float64; Adadelta has no bias correction."""
    return new_record(
        AdadeltaScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            weight_decay,
            settings.rho,
            1.0 - settings.rho,
            settings.eps,
            lr,
        ),
    )


def _check_rho(value: Any, name: str) -> float:
    return check_fraction(value, name, "rho value")


ADADELTA = Declaration(
    name="Adadelta",
    hyperparameters=(
        shared.learning_rate(1.0),
        HyperParameter(
            "rho", 0.9, _check_rho, "Decay :math:`\\rho` in [0, 1] of both running averages."
        ),
        shared.epsilon(1e-6),
        shared.L2_WEIGHT_DECAY,
        shared.MAXIMIZE,
        *shared.STORAGE,
    ),
    states=lambda s: ("square_avg", "acc_delta"),
    kernel=lambda s: adadelta_update,
    scalars=adadelta_scalars,
)


class Adadelta(Optimizer):
    r"""Adadelta in ``torch.optim.Adadelta``'s form.

    For each element, with gradient :math:`g_t` at step :math:`t`:

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\, \theta_{t-1} \\
        s_t &= \rho\, s_{t-1} + (1 - \rho)\, g_t^2 \\
        \Delta_t &= \frac{\sqrt{a_{t-1} + \epsilon}}{\sqrt{s_t + \epsilon}}\, g_t \\
        a_t &= \rho\, a_{t-1} + (1 - \rho)\, \Delta_t^2 \\
        \theta_t &= \theta_{t-1} - \eta\, \Delta_t

    :math:`s` and :math:`a` are ``state['square_avg']`` and ``state['acc_delta']``.

    {parameters}

    References
    ----------
    M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.Adadelta({"w": np.ones(2)}, rho=0.0, eps=1e-12)
    >>> opt.step({"w": np.full(2, 0.5)})   # sqrt(eps) / sqrt(g**2) * g
    >>> opt.params["w"]
    array([0.999999, 0.999999])
    """

    declaration = ADADELTA
