"""Adagrad (Duchi, Hazan & Singer, 2011), exactly as torch.optim.Adagrad."""

from __future__ import annotations

from fastoptim import kernels
from fastoptim.kernels import AdagradScalars, new_record
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, Settings
from fastoptim.optim.optimizer import Optimizer


def adagrad_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> AdagradScalars:
    """Kernel scalars for step ``t``: the decayed rate ``lr / (1 + (t - 1) * lr_decay)``."""
    return new_record(
        AdagradScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            weight_decay,
            lr / (1.0 + (t - 1) * settings.lr_decay),
            settings.eps,
        ),
    )


ADAGRAD = Declaration(
    name="Adagrad",
    hyperparameters=(
        shared.learning_rate(1e-2),
        shared.nonnegative("lr_decay", ":math:`\\delta` >= 0."),
        shared.L2_WEIGHT_DECAY,
        shared.nonnegative(
            "initial_accumulator_value",
            ":math:`s_0` >= 0, the starting value of ``state['sum']``.",
        ),
        shared.epsilon(1e-10),
        shared.MAXIMIZE,
        *shared.STORAGE,
    ),
    states=lambda s: ("sum",),
    kernel=lambda s: kernels.adagrad_update,
    scalars=adagrad_scalars,
    initial_state=lambda s: {"sum": s.initial_accumulator_value},
)


class Adagrad(Optimizer):
    r"""Adagrad in ``torch.optim.Adagrad``'s form.

    For each element, with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\, \theta_{t-1} \\
        s_t &= s_{t-1} + g_t^2, \qquad s_0 = \text{initial\_accumulator\_value} \\
        \theta_t &= \theta_{t-1} - \frac{\eta}{1 + (t - 1)\, \delta}
                    \cdot \frac{g_t}{\sqrt{s_t} + \epsilon}

    {parameters}

    References
    ----------
    J. Duchi, E. Hazan and Y. Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 2011.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.Adagrad({"w": np.ones(2)}, lr=0.1)
    >>> opt.step({"w": np.full(2, 2.0)})   # g / sqrt(g**2) = 1
    >>> opt.params["w"]
    array([0.9, 0.9])
    """

    declaration = ADAGRAD
