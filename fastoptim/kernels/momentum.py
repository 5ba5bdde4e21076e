"""The course Momentum update (moving-average form), one pass over the flat buffer."""

from typing import NamedTuple

from fastoptim.kernels.elementwise import ElementwiseUpdate


class MomentumScalars(NamedTuple):
    """The scalar arguments of the Momentum kernel, in its order."""

    grad_scale: float
    beta: float
    one_minus_beta: float
    lr: float


def _momentum_body(loop):
    def momentum(param, grad, velocity, grad_scale, beta, one_minus_beta, lr):
        # Mutates param and velocity in place; assumes equal-length 1-D arrays, one dtype.
        # grad_scale (clipping) is 1 otherwise: multiplying by 1 is exact, the course bits stay.
        for i in loop(param.size):
            v = beta * velocity[i] + one_minus_beta * (grad_scale * grad[i])
            velocity[i] = v
            param[i] = param[i] - lr * v

    return momentum


momentum_update = ElementwiseUpdate(_momentum_body, n_state=1, scalars=MomentumScalars)
