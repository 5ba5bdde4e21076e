"""The Adam update (Kingma & Ba, Algorithm 1), one pass over the flat buffer."""

import numpy as np

from fastoptim.kernels.elementwise import ElementwiseKernel


def _adam_body(loop):
    def adam(
        param, grad, exp_avg, exp_avg_sq,
        beta1, one_minus_beta1, beta2, one_minus_beta2,
        step_size, inv_bias_correction2_sqrt, eps,
    ):  # fmt: skip
        # Mutates param, exp_avg, exp_avg_sq in place; assumes equal-length 1-D arrays.
        for i in loop(param.size):
            g = grad[i]
            m = beta1 * exp_avg[i] + one_minus_beta1 * g
            v = beta2 * exp_avg_sq[i] + one_minus_beta2 * (g * g)
            exp_avg[i] = m
            exp_avg_sq[i] = v
            param[i] = param[i] - step_size * (m / (np.sqrt(v) * inv_bias_correction2_sqrt + eps))

    return adam


adam = ElementwiseKernel(_adam_body, n_state=2, n_scalars=7)
