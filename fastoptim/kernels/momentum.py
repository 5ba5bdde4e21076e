"""The course Momentum update (moving-average form), one pass over the flat buffer."""

from typing import NamedTuple

import numba

from fastoptim.kernels.elementwise import ElementwiseUpdate


class MomentumScalars(NamedTuple):
    """The scalar arguments of the Momentum kernel, in its order."""

    grad_scale: float
    beta: float
    one_minus_beta: float
    lr: float


@numba.njit(inline="always")
def momentum(p, g, velocity, grad_scale, beta, one_minus_beta, lr):
    """One element of the course Momentum. grad_scale (clipping) is 1 otherwise:
    multiplying by 1 is exact, the course bits stay."""
    v = beta * velocity + one_minus_beta * (grad_scale * g)
    return p - lr * v, v


momentum_update = ElementwiseUpdate(momentum, n_state=1, scalars=MomentumScalars)
