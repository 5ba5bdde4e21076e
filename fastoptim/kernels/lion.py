"""Lion (Chen et al., 2023), one pass over the buffer: the sign of an interpolation of the
momentum and the gradient, then the momentum's own update."""

from typing import NamedTuple

import numba
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


@numba.njit(inline="always")
def lion(p, g, exp_avg, sign, decay, beta1, omb1, beta2, omb2, lr):
    """One element of Lion: 5 arrays' worth of traffic (read p, g, m; write p, m).
    np.sign keeps sign(0) = 0 and sign(NaN) = NaN, as torch's sign()."""
    g = sign * g
    if decay != 1.0:
        p = p * decay
    return p - lr * np.sign(beta1 * exp_avg + omb1 * g), beta2 * exp_avg + omb2 * g


lion_update = ElementwiseUpdate(lion, n_state=1, scalars=LionScalars, switches={"decay": 1.0})
