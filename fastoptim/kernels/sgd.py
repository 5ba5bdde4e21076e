"""torch's SGD with momentum, dampening, Nesterov, weight decay and maximize, one pass."""

from typing import NamedTuple

import numba

from fastoptim.kernels.elementwise import ElementwiseUpdate
from fastoptim.kernels.gradient import effective_grad


class SGDScalars(NamedTuple):
    """The scalar arguments of the SGD kernel, in its order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float
    buffer_decay: float  # momentum; 0 on the first step
    grad_weight: float  # 1 - dampening; 1 on the first step
    keep_buffer: float  # 1.0 with momentum, else 0.0
    nesterov: float  # 1.0 or 0.0
    momentum: float
    lr: float


@numba.njit(inline="always")
def sgd(
    p, g, momentum_buffer,
    sign, weight_decay, buffer_decay, grad_weight, keep_buffer, nesterov, momentum, lr,
):  # fmt: skip
    """One element of SGD: the new parameter and momentum buffer.

    buffer = buffer_decay * buffer + grad_weight * g: (momentum, 1 - dampening) from step
    2, (0, 1) on the first step, where torch's buffer is the gradient itself.
    keep_buffer and nesterov are 1.0 or 0.0, decided in Python: a tiny momentum may round
    to 0 in float32, but torch keeps a buffer for any momentum != 0. Without one the
    buffer is a place-holder the loop neither reads nor writes (12 bytes per float32
    element instead of 16), and the step is g, as b = 0 * 0 + 1 * g was.
    """
    g = effective_grad(g, p, sign, weight_decay)
    if keep_buffer != 0.0:
        b = buffer_decay * momentum_buffer + grad_weight * g
        step = g + momentum * b if nesterov != 0.0 else b
    else:
        b = momentum_buffer
        step = g
    return p - lr * step, b


sgd_update = ElementwiseUpdate(
    sgd,
    n_state=1,
    scalars=SGDScalars,
    optional={0: "keep_buffer"},
    switches={"weight_decay": 0.0},  # nesterov stays a branch: 4 copies, not 8
)
