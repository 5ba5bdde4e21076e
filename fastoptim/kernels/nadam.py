"""torch's NAdam (Dozat, 2016): Adam with Nesterov momentum, one pass over the buffer."""

from typing import NamedTuple

import numba
import numpy as np

from fastoptim.kernels.adam import SWITCHES, bounded, decayed_grad, moments
from fastoptim.kernels.elementwise import ElementwiseUpdate


class NAdamScalars(NamedTuple):
    """The scalar arguments of the NAdam kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float  # L2 decay added to the gradient (0 when decoupled)
    decay: float  # decoupled decay 1 - lr * weight_decay (else 1)
    beta1: float
    omb1: float  # 1 - beta1
    beta2: float
    omb2: float  # 1 - beta2
    grad_coefficient: float  # lr (1 - mu_t) / (1 - mu_product_t)
    avg_coefficient: float  # lr mu_{t+1} / (1 - mu_product_t mu_{t+1})
    inv_bias_correction2_sqrt: float  # 1 / sqrt(1 - beta2**t)
    eps: float
    m_bound: float  # int8 state only: the largest |m| / sqrt(v) exact moments can have


@numba.njit(inline="always")
def nadam(
    p, g, exp_avg, exp_avg_sq,
    sign, weight_decay, decay, beta1, omb1, beta2, omb2,
    grad_coefficient, avg_coefficient, inv_bias_correction2_sqrt, eps, m_bound,
):  # fmt: skip
    """One element of NAdam: ``p - (c_g g + c_m m) / (sqrt(v_hat) + eps)``, the new
    parameter and moments (the gradient's and the average's terms share one division)."""
    p, g = decayed_grad(p, g, sign, weight_decay, decay)
    m, v = moments(g, exp_avg, exp_avg_sq, beta1, omb1, beta2, omb2)
    root = np.sqrt(v)
    average = bounded(m, m_bound * root, m_bound)  # the step's, not the stored one
    denominator = root * inv_bias_correction2_sqrt + eps
    return p - (grad_coefficient * g + avg_coefficient * average) / denominator, m, v


nadam_update = ElementwiseUpdate(
    nadam,
    n_state=2,
    scalars=NAdamScalars,
    switches=SWITCHES,
    unsigned={1},
    int8_only={"m_bound": np.inf},
)
