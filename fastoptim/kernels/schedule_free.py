"""Schedule-Free AdamW (Defazio et al., 2024), one pass over the buffer (its in-place move
between its two sequences, ``train()`` / ``eval()``, is ``interpolation.interpolate``).

The parameters hold ``y``, the point the gradient is taken at; the state holds ``z``, the
base sequence, and Adam's second moment. The average ``x`` is never stored: while
training, ``y = (1 - beta1) z + beta1 x``, so ``x`` is one interpolation away (``lerp``).
A step reads p, g, z, v and writes p, z, v: 7 elements, Adam's traffic.
"""

from typing import NamedTuple

import numba
import numpy as np

from fastoptim.kernels.elementwise import ElementwiseUpdate
from fastoptim.kernels.interpolation import lerp


class ScheduleFreeScalars(NamedTuple):
    """The scalar arguments of the Schedule-Free AdamW kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    beta2: float
    omb2: float  # 1 - beta2
    bias_correction2: float  # 1 - beta2**t
    eps: float
    weight_decay: float  # decay at y, added to the normalized gradient
    ckp1: float  # the weight of this step's z in the average x
    omckp1: float  # 1 - ckp1
    y_step: float  # lr (beta1 (1 - ckp1) - 1): y's step along the normalized gradient
    lr: float  # the warmed-up learning rate: z's step


@numba.njit(inline="always")
def adamw_schedule_free(
    p, g, z, exp_avg_sq,
    sign, beta2, omb2, bias_correction2, eps, weight_decay, ckp1, omckp1, y_step, lr,
):  # fmt: skip
    """One element of Schedule-Free AdamW, as the schedulefree package orders it: the new
    ``y`` (the parameter), ``z`` and second moment."""
    g = sign * g
    v = beta2 * exp_avg_sq + omb2 * g * g  # (omb2 g) g, as torch's addcmul
    u = g / (np.sqrt(v / bias_correction2) + eps)
    if weight_decay != 0.0:
        u = u + weight_decay * p
    y = lerp(p, z, ckp1, omckp1) + y_step * u
    return y, z - lr * u, v


schedule_free_update = ElementwiseUpdate(
    adamw_schedule_free,
    n_state=2,
    scalars=ScheduleFreeScalars,
    switches={"weight_decay": 0.0},
    unsigned={1},
)
