"""The gradient every torch-form update starts from, shared by the kernels.

Numba's on-disk cache checks only the timestamp of each kernel's own file: after editing
this one, delete the ``*.nbi``/``*.nbc`` files in ``fastoptim/kernels/__pycache__`` (an
installed package gets new timestamps on every install, so users are not affected).
"""

import numba


@numba.njit(inline="always")
def effective_grad(grad, param, sign, weight_decay):
    """``sign * grad + weight_decay * param``: maximize flips the sign (``sign = -1``), L2
    weight decay joins the gradient. With ``weight_decay = 0`` no arithmetic is added, so
    a non-finite parameter does not leak into the gradient (as in the references)."""
    g = sign * grad
    if weight_decay != 0.0:
        g = g + weight_decay * param
    return g
