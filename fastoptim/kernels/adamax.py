"""torch's Adamax (Kingma & Ba, 2015, section 7.1): Adam with an infinity norm, one pass."""

from typing import NamedTuple

import numba
import numpy as np

from fastoptim.kernels.adam import bounded
from fastoptim.kernels.elementwise import ElementwiseUpdate
from fastoptim.kernels.gradient import effective_grad


class AdamaxScalars(NamedTuple):
    """The scalar arguments of the Adamax kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float
    beta1: float
    omb1: float  # 1 - beta1
    beta2: float
    eps: float
    clr: float  # lr / (1 - beta1**t)
    m_bound: float  # int8 state only: the largest |m| / u exact states can have


@numba.njit(inline="always")
def adamax(p, g, exp_avg, exp_inf, sign, weight_decay, beta1, omb1, beta2, eps, clr, m_bound):
    """One element of Adamax: ``u = max(beta2 u, |g| + eps)``, ``p - clr m / u``; the new
    parameter, first moment and infinity norm."""
    g = effective_grad(g, p, sign, weight_decay)
    m = beta1 * exp_avg + omb1 * g
    u = max(beta2 * exp_inf, abs(g) + eps)
    return p - clr * (bounded(m, m_bound * u, m_bound) / u), m, u


adamax_update = ElementwiseUpdate(
    adamax,
    n_state=2,
    scalars=AdamaxScalars,
    switches={"weight_decay": 0.0},
    unsigned={1},
    int8_only={"m_bound": np.inf},
)
