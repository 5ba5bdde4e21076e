"""Lion (Chen et al., 2023), one pass over the buffer: the sign of an interpolation of the
momentum and the gradient, then the momentum's own update."""

from typing import NamedTuple

import numpy as np

from fastoptim.kernels.elementwise import ElementwiseUpdate


class LionScalars(NamedTuple):
    """The scalar arguments of the Lion kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    decay: float  # 1 - lr * weight_decay (decoupled, as AdamW)
    beta1: float
    omb1: float  # 1 - beta1
    beta2: float
    omb2: float  # 1 - beta2
    lr: float


def _lion_body(loop):
    def lion(param, grad, exp_avg, sign, decay, beta1, omb1, beta2, omb2, lr):
        # Mutates param and exp_avg in place: 5 arrays' worth of traffic (read p, g, m;
        # write p, m). np.sign keeps sign(0) = 0 and sign(NaN) = NaN, as torch's sign().
        for i in loop(param.size):
            g = sign * grad[i]
            m = exp_avg[i]
            p = param[i]
            if decay != 1.0:
                p = p * decay
            param[i] = p - lr * np.sign(beta1 * m + omb1 * g)
            exp_avg[i] = beta2 * m + omb2 * g

    return lion


lion_update = ElementwiseUpdate(_lion_body, n_state=1, scalars=LionScalars)
