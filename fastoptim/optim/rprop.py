"""Rprop (Riedmiller & Braun, 1993), as torch.optim.Rprop."""

from __future__ import annotations

from fastoptim.kernels import new_record
from fastoptim.kernels.rprop import RpropScalars, rprop_update
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_etas, check_step_sizes
from fastoptim.optim.optimizer import Optimizer


def rprop_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> RpropScalars:
    """Kernel scalars: on a layer's first step its step sizes start at ``lr`` (as torch's
    ``state['step_size']`` does); afterwards ``lr`` is not used."""
    etaminus, etaplus = settings.etas
    low, high = settings.step_sizes
    return new_record(
        RpropScalars,
        (
            -grad_scale if settings.maximize else grad_scale,
            etaminus,
            etaplus,
            low,
            high,
            1.0 if t == 1 else 0.0,
            lr,
        ),
    )


RPROP = Declaration(
    name="Rprop",
    hyperparameters=(
        shared.learning_rate(1e-2),
        HyperParameter(
            "etas",
            (0.5, 1.2),
            check_etas,
            "``(etaminus, etaplus)``, 0 < etaminus < 1 < etaplus: how a step size shrinks "
            "where the gradient changed sign and grows where it kept it.",
        ),
        HyperParameter(
            "step_sizes",
            (1e-6, 50.0),
            check_step_sizes,
            "``(min, max)`` of every step size, 0 <= min <= max.",
        ),
        shared.MAXIMIZE,
    ),
    states=lambda s: ("prev", "step_size"),
    kernel=lambda s: rprop_update,
    scalars=rprop_scalars,
    group_options=("lr",),  # Rprop has no weight decay
)


class Rprop(Optimizer):
    r"""Rprop in ``torch.optim.Rprop``'s form (full-batch training: the sign of the
    gradient, with a step size per element).

    For each element, with gradient :math:`g_t` (negated with ``maximize``) at step
    :math:`t`, previous gradient :math:`g_{t-1}` (0 at first) and step size
    :math:`\delta_{t-1}` (:math:`\delta_0 = \eta`):

    .. math::

        \delta_t &= \operatorname{clip}\big(\delta_{t-1} \cdot
            \begin{cases}
              \eta_+ & g_t g_{t-1} > 0 \\
              \eta_- & g_t g_{t-1} < 0 \quad (\text{then } g_t \leftarrow 0) \\
              1 & \text{otherwise}
            \end{cases},\ \delta_{\min}, \delta_{\max}\big) \\
        \theta_t &= \theta_{t-1} - \operatorname{sign}(g_t)\, \delta_t

    ``state['prev']`` keeps :math:`g_t` (zeroed where the sign flipped) and
    ``state['step_size']`` :math:`\delta_t`. The learning rate is used only on the first
    step: changing it later (a schedule) changes nothing, as in torch.

    {parameters}

    References
    ----------
    M. Riedmiller and H. Braun, "A direct adaptive method for faster backpropagation
    learning: the RPROP algorithm", ICNN 1993.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.Rprop({"w": np.ones(2)}, lr=0.1)
    >>> opt.step({"w": np.array([0.5, -0.5])})   # each weight moves by lr against its sign
    >>> opt.params["w"]
    array([0.9, 1.1])
    """

    declaration = RPROP
