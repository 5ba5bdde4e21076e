"""Plain gradient descent, one pass over the flat buffer."""

from typing import NamedTuple

import numba

from fastoptim.kernels.elementwise import ElementwiseUpdate


class GDScalars(NamedTuple):
    """The scalar argument of the gradient-descent kernel."""

    lr: float


@numba.njit(inline="always")
def gd(p, g, lr):
    """One element of gradient descent."""
    return (p - lr * g,)


gd_update = ElementwiseUpdate(gd, n_state=0, scalars=GDScalars)
