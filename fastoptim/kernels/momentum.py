"""The course Momentum update (moving-average form), one pass over the flat buffer."""

from fastoptim.kernels.elementwise import ElementwiseKernel


def _momentum_body(loop):
    def momentum(param, grad, velocity, beta, one_minus_beta, lr):
        # Mutates param and velocity in place; assumes equal-length 1-D arrays, one dtype.
        for i in loop(param.size):
            v = beta * velocity[i] + one_minus_beta * grad[i]
            velocity[i] = v
            param[i] = param[i] - lr * v

    return momentum


momentum = ElementwiseKernel(_momentum_body, n_state=1, n_scalars=3)
