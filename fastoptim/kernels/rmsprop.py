"""torch's RMSprop (centered, momentum, weight decay, maximize), one pass over the buffer."""

from typing import NamedTuple

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


def _rmsprop_body(loop):
    def rmsprop(
        param, grad, square_avg, grad_avg, momentum_buffer,
        sign, weight_decay, alpha, one_minus_alpha, eps, centered, uses_momentum, momentum, lr,
    ):  # fmt: skip
        # grad_avg and momentum_buffer are only touched when centered / uses_momentum are
        # 1.0, decided in Python (a tiny momentum may round to 0 in float32, but torch keeps
        # a buffer for any momentum != 0); the optimizer passes empty arrays otherwise.
        for i in loop(param.size):
            p = param[i]
            g = effective_grad(grad[i], p, sign, weight_decay)
            sq = alpha * square_avg[i] + one_minus_alpha * (g * g)
            square_avg[i] = sq
            if centered != 0.0:
                ga = grad_avg[i] + one_minus_alpha * (g - grad_avg[i])
                grad_avg[i] = ga
                denominator = np.sqrt(sq - ga * ga) + eps
            else:
                denominator = np.sqrt(sq) + eps
            if uses_momentum != 0.0:
                b = momentum * momentum_buffer[i] + g / denominator
                momentum_buffer[i] = b
                param[i] = p - lr * b
            else:
                param[i] = p - lr * (g / denominator)

    return rmsprop


rmsprop_update = ElementwiseUpdate(_rmsprop_body, n_state=3, scalars=RMSpropScalars)
