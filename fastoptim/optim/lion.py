"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms")."""

from __future__ import annotations

from fastoptim.kernels import new_record
from fastoptim.kernels.lion import LionScalars, lion_update
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_betas
from fastoptim.optim.optimizer import Optimizer


def lion_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> LionScalars:
    """Kernel scalars: the decoupled decay ``1 - lr * weight_decay`` and both ``1 - beta``
    in float64; ``grad_scale`` (clipping) folded with maximize's sign. Lion has no bias
    correction: ``t`` is not used."""
    beta1, beta2 = settings.betas
    return new_record(
        LionScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            1.0 - lr * weight_decay,
            beta1,
            1.0 - beta1,
            beta2,
            1.0 - beta2,
            lr,
        ),
    )


LION = Declaration(
    name="Lion",
    hyperparameters=(
        shared.learning_rate(1e-4),
        HyperParameter(
            "betas",
            (0.9, 0.99),
            check_betas,
            "``(beta1, beta2)``: the interpolation whose sign is the step, and the decay of "
            "the momentum, each in [0, 1).",
        ),
        shared.nonnegative(
            "weight_decay",
            "Decoupled decay :math:`\\lambda` >= 0: the parameter is scaled by "
            ":math:`1 - \\eta \\lambda` first, as in AdamW.",
        ),
        shared.MAXIMIZE,
        *shared.STORAGE,
    ),
    states=lambda s: ("exp_avg",),
    kernel=lambda s: lion_update,
    scalars=lion_scalars,
)


class Lion(Optimizer):
    r"""Lion: the sign of an interpolation of momentum and gradient, as lion-pytorch.

    For each element, with gradient :math:`g_t` at step :math:`t`:

    .. math::

        c_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        \theta_t &= (1 - \eta \lambda)\, \theta_{t-1} - \eta\, \mathrm{sign}(c_t) \\
        m_t &= \beta_2 m_{t-1} + (1 - \beta_2)\, g_t

    ====================  =====================================================
    :math:`\theta`        parameters (``params``)
    :math:`m`             ``state['exp_avg']``, zero at start
    :math:`\eta`          ``lr`` (about 3-10x smaller than AdamW's)
    :math:`\lambda`       ``weight_decay`` (about 3-10x larger than AdamW's)
    :math:`\beta_1, \beta_2`  ``betas``
    ====================  =====================================================

    :math:`\mathrm{sign}(0) = 0`. Every element moves by exactly :math:`\eta` (or not at
    all), whatever the gradient's scale, so Lion keeps one state buffer instead of Adam's
    two: 20 bytes per float32 element per step instead of 28.

    {parameters}

    References
    ----------
    X. Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023
    (google/automl, lion_pytorch.py).

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.Lion({"w": np.ones(3)}, lr=0.1)
    >>> opt.step({"w": np.array([2.0, 0.0, -0.5])})   # each moves by lr, against the sign
    >>> opt.params["w"]
    array([0.9, 1. , 1.1])
    """

    declaration = LION
