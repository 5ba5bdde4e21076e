"""torch's ASGD (Polyak & Juditsky, 1992; Bottou's decaying step), one pass over the buffer."""

from typing import NamedTuple

import numba

from fastoptim.kernels.elementwise import ElementwiseUpdate
from fastoptim.kernels.gradient import effective_grad


class ASGDScalars(NamedTuple):
    """The scalar arguments of the ASGD kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float
    decay: float  # 1 - lambd * eta
    eta: float  # this step's step size
    mu: float  # this step's averaging weight (1: the average is the parameter)


@numba.njit(inline="always")
def asgd(p, g, ax, sign, weight_decay, decay, eta, mu):
    """One element of ASGD: the parameter decays and steps against the gradient, then the
    average moves a fraction ``mu`` of the way to it (with ``mu = 1`` it is copied, as
    torch does). Returns the new parameter and average."""
    g = effective_grad(g, p, sign, weight_decay)
    p = p * decay - eta * g
    ax = p if mu == 1.0 else ax + (p - ax) * mu
    return p, ax


asgd_update = ElementwiseUpdate(
    asgd, n_state=1, scalars=ASGDScalars, switches={"weight_decay": 0.0, "mu": 1.0}
)
