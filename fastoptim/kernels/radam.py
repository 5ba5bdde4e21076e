"""torch's RAdam (Liu et al., 2020): Adam whose adaptive step is rectified, one pass."""

from typing import NamedTuple

import numba
import numpy as np

from fastoptim.kernels.adam import SWITCHES, adam_moments, bounded
from fastoptim.kernels.elementwise import ElementwiseUpdate


class RAdamScalars(NamedTuple):
    """The scalar arguments of the RAdam kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float  # L2 decay added to the gradient (0 when decoupled)
    decay: float  # decoupled decay 1 - lr * weight_decay (else 1)
    beta1: float
    omb1: float  # 1 - beta1
    beta2: float
    omb2: float  # 1 - beta2
    rectified: float  # 1.0 while the variance is tractable (rho_t > 5), else 0.0
    step_size: float  # lr r_t sqrt(1 - beta2**t) / (1 - beta1**t); else lr / (1 - beta1**t)
    eps: float
    m_bound: float  # int8 state only: the largest |m| / sqrt(v) exact moments can have


@numba.njit(inline="always")
def radam(
    p, g, exp_avg, exp_avg_sq,
    sign, weight_decay, decay, beta1, omb1, beta2, omb2, rectified, step_size, eps, m_bound,
):  # fmt: skip
    """One element of RAdam: the rectified adaptive step ``step_size m / (sqrt(v) + eps)``,
    or the momentum step ``step_size m`` in the first steps; the new parameter and moments."""
    p, m, v = adam_moments(
        p, g, exp_avg, exp_avg_sq, sign, weight_decay, decay, beta1, omb1, beta2, omb2
    )
    if rectified != 0.0:
        root = np.sqrt(v)
        return p - step_size * (bounded(m, m_bound * root, m_bound) / (root + eps)), m, v
    return p - step_size * m, m, v


radam_update = ElementwiseUpdate(
    radam,
    n_state=2,
    scalars=RAdamScalars,
    switches={**SWITCHES, "rectified": 0.0},
    unsigned={1},
    int8_only={"m_bound": np.inf},
)
