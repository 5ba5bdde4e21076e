"""torch's Adagrad with weight decay, lr decay and maximize, one pass over the buffer."""

from typing import NamedTuple

import numba
import numpy as np

from fastoptim.kernels.elementwise import ElementwiseUpdate
from fastoptim.kernels.gradient import effective_grad


class AdagradScalars(NamedTuple):
    """The scalar arguments of the Adagrad kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float
    clr: float  # lr / (1 + (t - 1) * lr_decay)
    eps: float


@numba.njit(inline="always")
def adagrad(p, g, state_sum, sign, weight_decay, clr, eps):
    """One element of Adagrad: the new parameter and sum of squares."""
    g = effective_grad(g, p, sign, weight_decay)
    s = state_sum + g * g
    return p - clr * (g / (np.sqrt(s) + eps)), s


adagrad_update = ElementwiseUpdate(
    adagrad, n_state=1, scalars=AdagradScalars, switches={"weight_decay": 0.0}, unsigned={0}
)
