"""torch's Adagrad with weight decay, lr decay and maximize, one pass over the buffer."""

import numpy as np

from fastoptim.kernels.elementwise import ElementwiseKernel
from fastoptim.kernels.gradient import effective_grad


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


adagrad = ElementwiseKernel(_adagrad_body, n_state=1, n_scalars=4)
