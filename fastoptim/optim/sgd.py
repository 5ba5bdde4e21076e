"""SGD with momentum, dampening, Nesterov and weight decay, exactly as torch.optim.SGD."""

from __future__ import annotations

from fastoptim import kernels
from fastoptim.kernels import SGDScalars, new_record
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_flag
from fastoptim.optim.optimizer import Optimizer


def sgd_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> SGDScalars:
    """Kernel scalars for step ``t``: on the first step (or without momentum) the buffer is
    the gradient itself, ``b = 0 * b + 1 * g``; after it ``b = momentum * b + (1 -
    dampening) * g``. ``grad_scale`` (clipping) is folded with maximize's sign."""
    momentum = settings.momentum
    first = t == 1 or momentum == 0.0
    return new_record(
        SGDScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            weight_decay,
            0.0 if first else momentum,
            1.0 if first else 1.0 - settings.dampening,
            1.0 if momentum != 0.0 else 0.0,  # without momentum torch keeps no buffer
            1.0 if settings.nesterov else 0.0,
            momentum,
            lr,
        ),
    )


def _check_nesterov(settings: Settings) -> None:
    if settings.nesterov and (settings.momentum <= 0.0 or settings.dampening != 0.0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")


SGD_DECLARATION = Declaration(
    name="SGD",
    hyperparameters=(
        shared.learning_rate(1e-3),
        shared.nonnegative(
            "momentum",
            "Momentum :math:`\\mu` >= 0; ``state['momentum_buffer']`` holds :math:`b`.",
        ),
        shared.nonnegative("dampening", "Dampening :math:`\\tau` >= 0."),
        shared.L2_WEIGHT_DECAY,
        HyperParameter(
            "nesterov",
            False,
            check_flag,
            "Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``, as in torch.",
        ),
        shared.MAXIMIZE,
        *shared.STORAGE,
    ),
    states=lambda s: ("momentum_buffer",),
    kernel=lambda s: kernels.sgd_update,
    scalars=sgd_scalars,
    check=_check_nesterov,
)


class SGD(Optimizer):
    r"""Stochastic gradient descent in ``torch.optim.SGD``'s form.

    For each element, with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\, \theta_{t-1} \\
        b_t &= \begin{cases} g_t & t = 1 \\ \mu\, b_{t-1} + (1 - \tau)\, g_t & t > 1 \end{cases} \\
        \theta_t &= \theta_{t-1} - \eta \cdot \begin{cases}
            g_t + \mu\, b_t & \text{nesterov} \\ b_t & \text{otherwise} \end{cases}

    With ``momentum=0`` the step is :math:`\theta_t = \theta_{t-1} - \eta\, g_t`. This is not
    the course's :class:`Momentum`, whose velocity starts at zero and averages with
    :math:`1 - \beta`.

    {parameters}

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.SGD({"w": np.ones(2)}, lr=0.1, momentum=0.9)
    >>> opt.step({"w": np.ones(2)})   # first step: the buffer is the gradient
    >>> opt.params["w"]
    array([0.9, 0.9])
    """

    declaration = SGD_DECLARATION
