"""torch's Adadelta (Zeiler, 2012), one pass over the buffer."""

from typing import NamedTuple

import numba
import numpy as np

from fastoptim.kernels.elementwise import ElementwiseUpdate
from fastoptim.kernels.gradient import effective_grad


class AdadeltaScalars(NamedTuple):
    """The scalar arguments of the Adadelta kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float
    rho: float
    one_minus_rho: float
    eps: float
    lr: float


@numba.njit(inline="always")
def adadelta(p, g, square_avg, acc_delta, sign, weight_decay, rho, one_minus_rho, eps, lr):
    """One element of Adadelta: the new parameter, average of squared gradients and
    average of squared updates."""
    g = effective_grad(g, p, sign, weight_decay)
    sq = rho * square_avg + one_minus_rho * (g * g)
    delta = np.sqrt(acc_delta + eps) / np.sqrt(sq + eps) * g
    acc = rho * acc_delta + one_minus_rho * (delta * delta)
    return p - lr * delta, sq, acc


adadelta_update = ElementwiseUpdate(
    adadelta,
    n_state=2,
    scalars=AdadeltaScalars,
    switches={"weight_decay": 0.0},
    unsigned={0, 1},
)
