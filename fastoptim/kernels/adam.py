"""Adam and AdamW (Kingma & Ba, Algorithm 1; Loshchilov & Hutter), one pass over the buffer.

One loop serves Adam, Adam with L2 weight decay, AdamW and maximize: those are scalars. The
AMSGrad variant keeps a third state buffer, so it is its own kernel.
"""

from typing import NamedTuple

import numba
import numpy as np

from fastoptim.kernels.elementwise import ElementwiseUpdate
from fastoptim.kernels.gradient import effective_grad


class AdamScalars(NamedTuple):
    """The scalar arguments of the Adam kernels, in their order."""

    sign: float  # -grad_scale with maximize, else grad_scale
    weight_decay: float  # L2 decay added to the gradient (0 for AdamW)
    decay: float  # AdamW's 1 - lr * weight_decay (1 for Adam)
    beta1: float
    omb1: float  # 1 - beta1
    beta2: float
    omb2: float  # 1 - beta2
    step_size: float  # lr / (1 - beta1**t)
    inv_bias_correction2_sqrt: float  # 1 / sqrt(1 - beta2**t)
    eps: float
    m_bound: float  # int8 state only: the largest |m| / sqrt(v) exact moments can have


@numba.njit(inline="always")
def decayed_grad(p, g, sign, weight_decay, decay):
    """One element's gradient and decayed parameter, as Adam and its variants take them.

    ``g = sign * g (+ weight_decay * p)``: maximize flips the sign, L2 decay joins the
    gradient. ``p = decay * p``: decoupled decay (``1 - lr * weight_decay``). Options that
    are off cost no arithmetic, so the course Adam keeps its exact numbers.
    """
    g = effective_grad(g, p, sign, weight_decay)
    if decay != 1.0:
        p = p * decay
    return p, g


@numba.njit(inline="always")
def moments(g, m, v, beta1, omb1, beta2, omb2):
    """The new first and second moments of one element."""
    return beta1 * m + omb1 * g, beta2 * v + omb2 * (g * g)


@numba.njit(inline="always")
def adam_moments(p, g, m, v, sign, weight_decay, decay, beta1, omb1, beta2, omb2):
    """One element's decayed parameter and new moments (see ``decayed_grad``)."""
    p, g = decayed_grad(p, g, sign, weight_decay, decay)
    m, v = moments(g, m, v, beta1, omb1, beta2, omb2)
    return p, m, v


@numba.njit(inline="always")
def bounded(m, limit, m_bound):
    """``m`` clamped to ``[-limit, limit]`` (int8 state: ``limit = m_bound * root``, the
    largest first moment exact moments allow); elsewhere ``m_bound`` is the literal inf
    and the clamp compiles away."""
    if m_bound != np.inf:
        m = min(max(m, -limit), limit)
    return m


@numba.njit(inline="always")
def adam_step(p, m, root, step_size, inv_bias_correction2_sqrt, eps, m_bound):
    """``p - lr m_hat / (sqrt(v_hat) + eps)`` with ``root = sqrt(v)``. With int8 state,
    ``m`` is first clamped to ``m_bound * root``: exact moments never exceed that (so the
    clamp changes no step of theirs), while a second moment that quantized to 0 under a
    nonzero first moment would otherwise give a step of ``lr m_hat / eps``."""
    m = bounded(m, m_bound * root, m_bound)
    return p - step_size * (m / (root * inv_bias_correction2_sqrt + eps))


@numba.njit(inline="always")
def adam(
    p, g, exp_avg, exp_avg_sq,
    sign, weight_decay, decay, beta1, omb1, beta2, omb2,
    step_size, inv_bias_correction2_sqrt, eps, m_bound,
):  # fmt: skip
    """One element of Adam: the new parameter and moments."""
    p, m, v = adam_moments(
        p, g, exp_avg, exp_avg_sq, sign, weight_decay, decay, beta1, omb1, beta2, omb2
    )
    return adam_step(p, m, np.sqrt(v), step_size, inv_bias_correction2_sqrt, eps, m_bound), m, v


@numba.njit(inline="always")
def adam_amsgrad(
    p, g, exp_avg, exp_avg_sq, max_exp_avg_sq,
    sign, weight_decay, decay, beta1, omb1, beta2, omb2,
    step_size, inv_bias_correction2_sqrt, eps, m_bound,
):  # fmt: skip
    """As adam, but the denominator uses the largest second moment seen so far."""
    p, m, v = adam_moments(
        p, g, exp_avg, exp_avg_sq, sign, weight_decay, decay, beta1, omb1, beta2, omb2
    )
    v_max = max(max_exp_avg_sq, v)
    root = np.sqrt(v_max)
    return adam_step(p, m, root, step_size, inv_bias_correction2_sqrt, eps, m_bound), m, v, v_max


# the scalars that turn an option off at these values (L2 decay, AdamW's decay)
SWITCHES = {"weight_decay": 0.0, "decay": 1.0}
INT8_ONLY = {"m_bound": np.inf}  # the int8 loop's clamp, off in every other loop
adam_update = ElementwiseUpdate(
    adam, n_state=2, scalars=AdamScalars, switches=SWITCHES, unsigned={1}, int8_only=INT8_ONLY
)
adam_amsgrad_update = ElementwiseUpdate(
    adam_amsgrad,
    n_state=3,
    scalars=AdamScalars,
    switches=SWITCHES,
    unsigned={1, 2},
    int8_only=INT8_ONLY,
)
