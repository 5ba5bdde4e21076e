"""Schedule-Free AdamW (Defazio et al., 2024), one pass over the buffer, and the in-place
move between its two sequences (``train()`` / ``eval()``).

The parameters hold ``y``, the point the gradient is taken at; the state holds ``z``, the
base sequence, and Adam's second moment. The average ``x`` is never stored: while
training, ``y = (1 - beta1) z + beta1 x``, so ``x`` is one interpolation away (``lerp``).
A step reads p, g, z, v and writes p, z, v: 7 elements, Adam's traffic.
"""

from typing import NamedTuple

import numba
import numpy as np
from numba import types

from fastoptim.kernels.compiled import CompiledLoop
from fastoptim.kernels.elementwise import ElementwiseUpdate


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
def lerp(start, end, weight, complement):
    """``start + weight (end - start)`` as torch's ``lerp`` computes it: from ``end`` when
    ``|weight| >= 0.5``, so that weight 1 gives ``end`` exactly. ``complement`` is
    ``1 - weight``, a scalar argument (a float literal would make float32 loops float64)."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * complement


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


def _interpolate_body(loop):
    def interpolate(p, z, weight, complement):
        # p moves in place to lerp(p, z, weight): y -> x (eval) or x -> y (train)
        for i in loop(p.size):
            p[i] = lerp(p[i], z[i], weight, complement)

    return interpolate


def _interpolate_signature(dtype):
    value = numba.from_dtype(np.dtype(dtype))
    writable = types.Array(value, 1, "C")
    readonly = types.Array(value, 1, "C", readonly=True)
    return types.none(writable, readonly, value, value)


# interpolate(p, z, weight, 1 - weight): p = lerp(p, z, weight), 3 elements of traffic
interpolate = CompiledLoop(_interpolate_body, _interpolate_signature)
