"""Plain gradient descent, one pass over the flat buffer."""

from typing import NamedTuple

from fastoptim.kernels.elementwise import ElementwiseUpdate


class GDScalars(NamedTuple):
    """The scalar argument of the gradient-descent kernel."""

    lr: float


def _gd_body(loop):
    def gd(param, grad, lr):
        # Mutates param in place; assumes equal-length 1-D arrays of one dtype.
        for i in loop(param.size):
            param[i] = param[i] - lr * grad[i]

    return gd


gd_update = ElementwiseUpdate(_gd_body, n_state=0, scalars=GDScalars)
