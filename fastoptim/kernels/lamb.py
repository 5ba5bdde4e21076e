"""LAMB (You et al., 2020) in two passes over a run of layers cut into the clipping norm's
blocks (``norm.BLOCK`` elements from each layer's start, never straddling two layers).

``lamb_moments`` reads p, g, m and v and writes m and v (6 elements of traffic), and gives
each block's float64 sums of ``p**2`` and ``u**2`` for Adam's direction with decay
``u = m_hat / (sqrt(v_hat) + eps) + wd p``; the caller adds each layer's block sums in a
fixed order and takes its trust ratio (``trust_rates``, one serial call for every layer of
the run). ``lamb_step`` reads p, m and v, recomputes ``u``
with the same arithmetic and writes ``p - rate u``, ``rate`` the block's layer's
``lr * ratio`` (4 elements). 10 elements per parameter, 40 bytes in float32, against
Adam's 28: the ratio needs the whole layer's norm before any of it moves. Each block is
one thread's, its sums in lanes: the same bits for any thread count.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from fastoptim.kernels.adam import moments
from fastoptim.kernels.compiled import CompiledLoop
from fastoptim.kernels.lanes import LANES, fold, new_lanes


@numba.njit(inline="always")
def direction(p, m, v, inv_bias_correction1, inv_bias_correction2_sqrt, eps, weight_decay):
    """One element's ``m_hat / (sqrt(v_hat) + eps) + weight_decay p``."""
    return (m * inv_bias_correction1) / (np.sqrt(v) * inv_bias_correction2_sqrt + eps) + (
        weight_decay * p
    )


def _moments_body(loop):
    def lamb_moments(p, g, m, v, sign, beta1, omb1, beta2, omb2, inv_bias_correction1,
                     inv_bias_correction2_sqrt, eps, weight_decay, bounds, p_partials,
                     u_partials):  # fmt: skip
        # block b is [bounds[b], bounds[b + 1]): its moments move (written), its sums of p**2
        # and u**2 go to p_partials[b] and u_partials[b]
        for block in loop(p_partials.size):
            start, stop = bounds[block], bounds[block + 1]
            params, grads, ms, vs = p[start:stop], g[start:stop], m[start:stop], v[start:stop]
            lanes = new_lanes(2)
            p_lanes, u_lanes = lanes[:LANES], lanes[LANES:]
            for chunk in range(0, grads.size, LANES):
                end = min(chunk + LANES, grads.size)
                p0, g0, m0, v0 = params[chunk:end], grads[chunk:end], ms[chunk:end], vs[chunk:end]
                into_p, into_u = p_lanes[: end - chunk], u_lanes[: end - chunk]
                for k in range(g0.size):
                    new_m, new_v = moments(sign * g0[k], m0[k], v0[k], beta1, omb1, beta2, omb2)
                    m0[k], v0[k] = new_m, new_v
                    u = np.float64(
                        direction(
                            p0[k],
                            new_m,
                            new_v,
                            inv_bias_correction1,
                            inv_bias_correction2_sqrt,
                            eps,
                            weight_decay,
                        )
                    )
                    q = np.float64(p0[k])
                    into_p[k] += q * q
                    into_u[k] += u * u
            p_partials[block] = fold(p_lanes)
            u_partials[block] = fold(u_lanes)

    return lamb_moments


def _step_body(loop):
    def lamb_step(p, m, v, inv_bias_correction1, inv_bias_correction2_sqrt, eps, weight_decay,
                  bounds, block_layers, layer_rates):  # fmt: skip
        # block b moves by layer_rates[block_layers[b]] times u
        for block in loop(block_layers.size):
            start, stop = bounds[block], bounds[block + 1]
            rate = layer_rates[block_layers[block]]
            params, ms, vs = p[start:stop], m[start:stop], v[start:stop]
            for i in range(params.size):
                params[i] = params[i] - rate * direction(
                    params[i], ms[i], vs[i], inv_bias_correction1, inv_bias_correction2_sqrt,
                    eps, weight_decay,
                )  # fmt: skip

    return lamb_step


def _trust_rates_body(loop):
    def trust_rates(p_partials, u_partials, firsts, lr, layer_rates):
        # layer l's blocks are [firsts[l], firsts[l + 1]): its sums added in block order, then
        # its rate lr * ||p|| / ||u|| (lr where either norm is 0, as optax; NaN stays NaN)
        for layer in loop(layer_rates.size):
            p_squares, u_squares = 0.0, 0.0
            for block in range(firsts[layer], firsts[layer + 1]):
                p_squares += p_partials[block]
                u_squares += u_partials[block]
            ratio = 1.0
            if p_squares != 0.0 and u_squares != 0.0:
                ratio = np.sqrt(p_squares) / np.sqrt(u_squares)
            layer_rates[layer] = lr * ratio

    return trust_rates


def _arrays(dtype):
    value = numba.from_dtype(np.dtype(dtype))
    writable = types.Array(value, 1, "C")
    readonly = types.Array(value, 1, "C", readonly=True)
    index = types.Array(types.int64, 1, "C", readonly=True)
    return value, writable, readonly, index


def _moments_signature(dtype):
    value, writable, readonly, index = _arrays(dtype)
    sums = types.Array(types.float64, 1, "C")
    return types.none(
        readonly, readonly, writable, writable, *(value,) * 9, index, sums, sums
    )  # fmt: skip


def _step_signature(dtype):
    value, writable, readonly, index = _arrays(dtype)
    return types.none(writable, readonly, readonly, *(value,) * 4, index, index, readonly)


def _trust_rates_signature(dtype):
    _, writable, _, index = _arrays(dtype)
    sums = types.Array(types.float64, 1, "C", readonly=True)
    return types.none(sums, sums, index, types.float64, writable)


# lamb_moments(p, g, m, v, sign, beta1, 1 - beta1, beta2, 1 - beta2, 1 / bc1, 1 / sqrt(bc2),
#              eps, weight_decay, bounds, p_partials, u_partials)
lamb_moments = CompiledLoop(_moments_body, _moments_signature)
# lamb_step(p, m, v, 1 / bc1, 1 / sqrt(bc2), eps, weight_decay, bounds, block_layers, rates)
lamb_step = CompiledLoop(_step_body, _step_signature)
# trust_rates(p_partials, u_partials, firsts, lr, layer_rates): serial only
trust_rates = CompiledLoop(_trust_rates_body, _trust_rates_signature)
