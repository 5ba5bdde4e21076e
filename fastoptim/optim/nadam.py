"""NAdam (Dozat, 2016, "Incorporating Nesterov Momentum into Adam"), as torch.optim.NAdam."""

from __future__ import annotations

import math
import threading
from array import array

import numpy as np

from fastoptim.kernels import new_record
from fastoptim.kernels.nadam import NAdamScalars, nadam_update
from fastoptim.optim import shared_hyperparameters as shared
from fastoptim.optim.adam_variants import (
    BETAS,
    DECOUPLED_WEIGHT_DECAY,
    WEIGHT_DECAY,
    int8_bound,
    moment_scalars,
)
from fastoptim.optim.declaration import Declaration, HyperParameter, Settings
from fastoptim.optim.hyperparameters import check_nonnegative
from fastoptim.optim.optimizer import Optimizer


def momentum_at(beta1: float, momentum_decay: float, t: int) -> float:
    r""":math:`\mu_t = \beta_1 (1 - 0.5 \cdot 0.96^{t \psi})`, in float64 as torch."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))


# the products of each (beta1, momentum_decay) computed so far, by step (float32, 4 bytes a
# step): stepping on, or layers at other step counts, cost one multiplication or none
_PRODUCTS: dict[tuple[float, float], array] = {}
_EXTENDING = threading.Lock()


def mu_product(beta1: float, momentum_decay: float, t: int) -> float:
    r""":math:`\prod_{s \le t} \mu_s` as torch keeps it: a float32 product, each
    :math:`\mu_s` rounded to float32 before it is multiplied in (``state['mu_product']``
    is a float32 tensor), so the numbers are torch's to the bit."""
    with _EXTENDING:  # optimizers may step in several Python threads at once
        products = _PRODUCTS.setdefault((beta1, momentum_decay), array("f", [1.0]))
        while len(products) <= t:
            mu = np.float32(momentum_at(beta1, momentum_decay, len(products)))
            products.append(np.float32(products[-1]) * mu)
        return products[t]


def nadam_scalars(
    settings: Settings, t: int, lr: float, weight_decay: float, grad_scale: float
) -> NAdamScalars:
    """Kernel scalars for step ``t``: the coefficients of the gradient,
    ``lr (1 - mu_t) / (1 - prod_{s<=t} mu_s)``, and of the first moment,
    ``lr mu_{t+1} / (1 - prod_{s<=t+1} mu_s)``, and ``1 / sqrt(1 - beta2**t)``."""
    beta1, beta2 = settings.betas
    mu = momentum_at(beta1, settings.momentum_decay, t)
    mu_next = momentum_at(beta1, settings.momentum_decay, t + 1)
    product = mu_product(beta1, settings.momentum_decay, t)
    return new_record(
        NAdamScalars,
        (
            *moment_scalars(settings, lr, weight_decay, grad_scale),
            lr * (1.0 - mu) / (1.0 - product),
            lr * mu_next / (1.0 - product * mu_next),
            1.0 / math.sqrt(1.0 - beta2**t),
            settings.eps,
            int8_bound(settings, t),
        ),
    )


NADAM = Declaration(
    name="NAdam",
    hyperparameters=(
        shared.learning_rate(2e-3),
        BETAS,
        shared.epsilon(1e-8),
        WEIGHT_DECAY,
        HyperParameter(
            "momentum_decay", 4e-3, check_nonnegative, "Momentum decay :math:`\\psi` >= 0."
        ),
        DECOUPLED_WEIGHT_DECAY,
        shared.MAXIMIZE,
        *shared.STORAGE,
    ),
    states=lambda s: ("exp_avg", "exp_avg_sq"),
    kernel=lambda s: nadam_update,
    scalars=nadam_scalars,
)


class NAdam(Optimizer):
    r"""NAdam in ``torch.optim.NAdam``'s form.

    For each element, with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::

        g_t &\leftarrow \pm g_t + \lambda\, \theta_{t-1}
              \quad\text{(or } \theta_{t-1} \leftarrow (1 - \eta\lambda)\,\theta_{t-1}
              \text{ when decoupled)} \\
        \mu_t &= \beta_1 (1 - 0.5 \cdot 0.96^{t \psi}) \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \theta_t &= \theta_{t-1} - \eta \left(
            \frac{(1 - \mu_t)\, g_t}{1 - \prod_{s \le t} \mu_s}
            + \frac{\mu_{t+1}\, m_t}{1 - \prod_{s \le t+1} \mu_s} \right)
            \Big/ \left(\sqrt{v_t / (1 - \beta_2^t)} + \epsilon\right)

    The products of :math:`\mu` are computed from :math:`t` in float32, as torch keeps
    ``state['mu_product']``.

    {parameters}

    References
    ----------
    T. Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.

    Examples
    --------
    >>> import numpy as np, fastoptim
    >>> opt = fastoptim.NAdam({"w": np.ones(2)}, lr=0.1)
    >>> opt.step({"w": np.full(2, 0.5)})   # the gradient's term and the average's
    >>> np.round(opt.params["w"], 4)
    array([0.8944, 0.8944])
    """

    declaration = NADAM
