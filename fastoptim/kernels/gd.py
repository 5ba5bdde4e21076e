"""Plain gradient descent, one pass over the flat buffer."""

from fastoptim.kernels.elementwise import ElementwiseKernel


def _gd_body(loop):
    def gd(param, grad, lr):
        # Mutates param in place; assumes equal-length 1-D arrays of one dtype.
        for i in loop(param.size):
            param[i] = param[i] - lr * grad[i]

    return gd


gd = ElementwiseKernel(_gd_body, n_state=0, n_scalars=1)
