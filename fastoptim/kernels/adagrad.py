"""torch's Adagrad with weight decay, lr decay and maximize, one pass over the buffer."""

from typing import NamedTuple

import numpy as np

from fastoptim.kernels.elementwise import ElementwiseUpdate
from fastoptim.kernels.gradient import effective_grad


class AdagradScalars(NamedTuple):
    """The scalar arguments of the Adagrad kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float
    clr: float  # lr / (1 + (t - 1) * lr_decay)
    eps: float


def _adagrad_body(loop):
    def adagrad(param, grad, state_sum, sign, weight_decay, clr, eps):
        # Mutates param and state_sum in place; assumes equal-length 1-D arrays, one dtype.
        for i in loop(param.size):
            p = param[i]
            g = effective_grad(grad[i], p, sign, weight_decay)
            s = state_sum[i] + g * g
            state_sum[i] = s
            param[i] = p - clr * (g / (np.sqrt(s) + eps))

    return adagrad


adagrad_update = ElementwiseUpdate(_adagrad_body, n_state=1, scalars=AdagradScalars)
