"""torch's RMSprop (centered, momentum, weight decay, maximize), one pass over the buffer."""

from typing import NamedTuple

import numba
import numpy as np

from fastoptim.kernels.elementwise import ElementwiseUpdate
from fastoptim.kernels.gradient import effective_grad


class RMSpropScalars(NamedTuple):
    """The scalar arguments of the RMSprop kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float
    alpha: float
    one_minus_alpha: float
    eps: float
    centered: float  # 1.0 or 0.0
    uses_momentum: float  # 1.0 or 0.0
    momentum: float
    lr: float


@numba.njit(inline="always")
def rmsprop(
    p, g, square_avg, grad_avg, momentum_buffer,
    sign, weight_decay, alpha, one_minus_alpha, eps, centered, uses_momentum, momentum, lr,
):  # fmt: skip
    """One element of RMSprop: the new parameter and states.

    grad_avg and momentum_buffer are only used when centered / uses_momentum are 1.0,
    decided in Python (a tiny momentum may round to 0 in float32, but torch keeps a buffer
    for any momentum != 0); otherwise they are place-holders the loop neither reads nor
    writes.
    """
    g = effective_grad(g, p, sign, weight_decay)
    sq = alpha * square_avg + one_minus_alpha * (g * g)
    ga = grad_avg
    if centered != 0.0:
        ga = grad_avg + one_minus_alpha * (g - grad_avg)
        denominator = np.sqrt(sq - ga * ga) + eps
    else:
        denominator = np.sqrt(sq) + eps
    b = momentum_buffer
    if uses_momentum != 0.0:
        b = momentum * momentum_buffer + g / denominator
        p = p - lr * b
    else:
        p = p - lr * (g / denominator)
    return p, sq, ga, b


rmsprop_update = ElementwiseUpdate(
    rmsprop,
    n_state=3,
    scalars=RMSpropScalars,
    optional={1: "centered", 2: "uses_momentum"},
    unsigned={0},
    # the gates are the switches (weight_decay stays a branch: 4 copies, not 8)
)
