"""torch's Adafactor (Shazeer & Stern, 2018): the reductions and the update, as passes over
one layer.

A layer of two or more dimensions is taken as ``M = B * R`` rows of ``C`` elements (``B``
matrices of ``R x C``: torch factors the last two dimensions). Its second moment is factored:
a mean of ``g**2`` per row and per column. Three passes (float32 bytes per element):

1. ``factored_sums`` reads p and g (8 B): each row's sum of ``g**2``, each unit's column sums
   and sum of ``p**2``;
2. ``factored_update_squares`` reads g (4 B): each unit's sum of ``u**2``, ``u`` the update
   direction from the new factors (its RMS clips the step, so it is needed before the step);
3. ``factored_step`` reads p and g, writes p (12 B).

Where the clamp ``max(V, eps1**2)`` binds nowhere in the layer, ``scaled_update_squares`` and
``scaled_step`` replace 2 and 3: ``1 / sqrt(V)`` is then a row's root times a column's, taken
once per row and column by the caller instead of once per element.

A layer of one dimension (or none) keeps a full second moment ``v``: ``vector_sums`` reads
p, g and v and writes v (16 B) with the sums of ``p**2`` and ``u**2``, then ``vector_step``
reads p, g and v and writes p (16 B).

Every sum is taken in float64 over fixed units (blocks of rows that never straddle two
matrices, or ``norm.BLOCK`` elements of a vector), each by one thread in a fixed order, and
the units' sums are added in a fixed order by the caller: the same bits for any thread count.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from fastoptim.kernels.compiled import CompiledLoop
from fastoptim.kernels.norm import sum_of_squares

# the rows of a unit hold at least this many elements, and at least MIN_UNIT_ROWS rows (each
# unit writes and the caller reads its column sums: 1/64 of a wide layer's size, in float64)
UNIT_ELEMENTS = 8192
MIN_UNIT_ROWS = 64


# Partial sums: element k of a row (or block) goes to partial sum k % 4, and the four are
# added in a fixed order, as the clipping norm's: the adds of one do not wait on another's,
# and the bits depend neither on the machine's vector width nor on the thread count.


def _factored_sums_body(loop):
    def factored_sums(p, g, scale, n_cols, row_bounds, row_sums, col_partials, p_partials):
        # unit u: rows row_bounds[u]:row_bounds[u + 1]; writes their row sums of (scale g)**2,
        # its column sums col_partials[u * n_cols:(u + 1) * n_cols] and its sum of p**2, in
        # one sweep of each row (a wide row does not stay in L1 for a second)
        for unit in loop(p_partials.size):
            base = unit * n_cols
            for c in range(n_cols):
                col_partials[base + c] = 0.0
            p0 = p1 = p2 = p3 = 0.0
            for row in range(row_bounds[unit], row_bounds[unit + 1]):
                offset = row * n_cols
                s0 = s1 = s2 = s3 = 0.0
                c = 0
                while c + 4 <= n_cols:
                    x0 = np.float64(g[offset + c]) * scale
                    x1 = np.float64(g[offset + c + 1]) * scale
                    x2 = np.float64(g[offset + c + 2]) * scale
                    x3 = np.float64(g[offset + c + 3]) * scale
                    q0 = np.float64(p[offset + c])
                    q1 = np.float64(p[offset + c + 1])
                    q2 = np.float64(p[offset + c + 2])
                    q3 = np.float64(p[offset + c + 3])
                    col_partials[base + c] += x0 * x0
                    col_partials[base + c + 1] += x1 * x1
                    col_partials[base + c + 2] += x2 * x2
                    col_partials[base + c + 3] += x3 * x3
                    s0 += x0 * x0
                    s1 += x1 * x1
                    s2 += x2 * x2
                    s3 += x3 * x3
                    p0 += q0 * q0
                    p1 += q1 * q1
                    p2 += q2 * q2
                    p3 += q3 * q3
                    c += 4
                while c < n_cols:
                    x0 = np.float64(g[offset + c]) * scale
                    q0 = np.float64(p[offset + c])
                    col_partials[base + c] += x0 * x0
                    s0 += x0 * x0
                    p0 += q0 * q0
                    c += 1
                row_sums[row] = (s0 + s1) + (s2 + s3)
            p_partials[unit] = (p0 + p1) + (p2 + p3)

    return factored_sums


def _scaled_update_squares_body(loop):
    def scaled_update_squares(g, scale, n_cols, n_rows, row_bounds, row_weights, col_weights,
                              u_partials):  # fmt: skip
        # where no clamp applies: u**2 = (scale g)**2 row_weight col_weight, the weights
        # 1 / row_factor and 1 / col_var in float64
        for unit in loop(u_partials.size):
            total = 0.0
            for row in range(row_bounds[unit], row_bounds[unit + 1]):
                offset = row * n_cols
                cols = (row // n_rows) * n_cols
                row_sum = sum_of_squares(g, offset, offset + n_cols, scale, col_weights, cols)
                total += row_sum * row_weights[row]
            u_partials[unit] = total

    return scaled_update_squares


def _factored_update_squares_body(loop):
    def factored_update_squares(
        g, scale, n_cols, n_rows, row_bounds, row_factors, col_var, eps1_squared, u_partials
    ):
        # each unit's sum of u**2, u = scale g / sqrt(max(row_factor * col_var, eps1**2))
        for unit in loop(u_partials.size):
            s0 = s1 = 0.0
            for row in range(row_bounds[unit], row_bounds[unit + 1]):
                offset = row * n_cols
                cols = (row // n_rows) * n_cols
                factor = row_factors[row]
                c = 0
                while c + 2 <= n_cols:
                    x0 = np.float64(g[offset + c]) * scale
                    x1 = np.float64(g[offset + c + 1]) * scale
                    s0 += x0 * x0 / max(factor * col_var[cols + c], eps1_squared)
                    s1 += x1 * x1 / max(factor * col_var[cols + c + 1], eps1_squared)
                    c += 2
                if c < n_cols:
                    x0 = np.float64(g[offset + c]) * scale
                    s0 += x0 * x0 / max(factor * col_var[cols + c], eps1_squared)
            u_partials[unit] = s0 + s1

    return factored_update_squares


def _scaled_step_body(loop):
    def scaled_step(p, g, decay, n_cols, n_rows, row_bounds, row_coefficients, col_roots):
        # where no clamp applies: p = decay p - (step scale / sqrt(row_factor)) g / sqrt(col)
        for unit in loop(row_bounds.size - 1):
            for row in range(row_bounds[unit], row_bounds[unit + 1]):
                offset = row * n_cols
                cols = (row // n_rows) * n_cols
                coefficient = row_coefficients[row]
                for c in range(n_cols):
                    p[offset + c] = p[offset + c] * decay - coefficient * (
                        g[offset + c] * col_roots[cols + c]
                    )

    return scaled_step


def _factored_step_body(loop):
    def factored_step(
        p, g, scale, decay, step, n_cols, n_rows, row_bounds, row_factors, col_var, eps1_squared
    ):
        # p = decay p - step u, in the parameters' dtype
        for unit in loop(row_bounds.size - 1):
            for row in range(row_bounds[unit], row_bounds[unit + 1]):
                offset = row * n_cols
                cols = (row // n_rows) * n_cols
                factor = row_factors[row]
                for c in range(n_cols):
                    variance = max(factor * col_var[cols + c], eps1_squared)
                    update = (scale * g[offset + c]) / np.sqrt(variance)
                    p[offset + c] = p[offset + c] * decay - step * update

    return factored_step


def _vector_sums_body(loop):
    def vector_sums(p, g, v, scale, weight, eps1_squared, bounds, p_partials, u_partials):
        # v moves a fraction ``weight`` of the way to (scale g)**2 (written); each block's
        # sums of p**2 and of u**2, u = scale g / sqrt(max(v, eps1**2))
        for block in loop(p_partials.size):
            stop = bounds[block + 1]
            for i in range(bounds[block], stop):  # no reduction: packed
                x = scale * g[i]
                v[i] = v[i] + weight * (x * x - v[i])
            p_partials[block] = sum_of_squares(p, bounds[block], stop, 1.0, None, 0)
            u_partials[block] = _update_squares(g, v, bounds[block], stop, scale, eps1_squared)

    return vector_sums


@numba.njit(inline="always")
def _update_squares(g, v, start, stop, scale, eps1_squared):
    """sum of (scale g)**2 / max(v, eps1**2) over [start, stop), in float64."""
    s0 = s1 = 0.0
    i = start
    while i + 2 <= stop:
        x0 = np.float64(g[i]) * scale
        x1 = np.float64(g[i + 1]) * scale
        s0 += x0 * x0 / max(np.float64(v[i]), eps1_squared)
        s1 += x1 * x1 / max(np.float64(v[i + 1]), eps1_squared)
        i += 2
    if i < stop:
        x0 = np.float64(g[i]) * scale
        s0 += x0 * x0 / max(np.float64(v[i]), eps1_squared)
    return s0 + s1


def _vector_step_body(loop):
    def vector_step(p, g, v, scale, decay, step, eps1_squared):
        for i in loop(p.size):
            update = (scale * g[i]) / np.sqrt(max(v[i], eps1_squared))
            p[i] = p[i] * decay - step * update

    return vector_step


def _arrays(dtype: np.dtype):
    value = numba.from_dtype(np.dtype(dtype))
    return (
        value,
        types.Array(value, 1, "C"),
        types.Array(value, 1, "C", readonly=True),
        types.Array(types.int64, 1, "C", readonly=True),
        types.Array(types.float64, 1, "C"),
        types.Array(types.float64, 1, "C", readonly=True),
    )


def _factored_sums_signature(dtype):
    _, _, readonly, index, out, _ = _arrays(dtype)
    return types.none(readonly, readonly, types.float64, types.int64, index, out, out, out)


def _factored_update_squares_signature(dtype):
    value, _, readonly, index, out, _ = _arrays(dtype)
    factors = types.Array(value, 1, "C", readonly=True)
    return types.none(
        readonly, types.float64, types.int64, types.int64, index, factors, factors,
        types.float64, out,
    )  # fmt: skip


def _factored_step_signature(dtype):
    value, writable, readonly, index, _, _ = _arrays(dtype)
    factors = types.Array(value, 1, "C", readonly=True)
    return types.none(
        writable, readonly, value, value, value, types.int64, types.int64, index, factors,
        factors, value,
    )  # fmt: skip


def _scaled_update_squares_signature(dtype):
    _, _, readonly, index, out, weights = _arrays(dtype)
    return types.none(
        readonly, types.float64, types.int64, types.int64, index, weights, weights, out
    )


def _scaled_step_signature(dtype):
    value, writable, readonly, index, _, _ = _arrays(dtype)
    return types.none(
        writable, readonly, value, types.int64, types.int64, index, readonly, readonly
    )


def _vector_sums_signature(dtype):
    value, writable, readonly, index, out, _ = _arrays(dtype)
    return types.none(readonly, readonly, writable, value, value, types.float64, index, out, out)


def _vector_step_signature(dtype):
    value, writable, readonly, _, _, _ = _arrays(dtype)
    return types.none(writable, readonly, readonly, value, value, value, value)


factored_sums = CompiledLoop(_factored_sums_body, _factored_sums_signature)
factored_update_squares = CompiledLoop(
    _factored_update_squares_body, _factored_update_squares_signature
)
factored_step = CompiledLoop(_factored_step_body, _factored_step_signature)
scaled_update_squares = CompiledLoop(_scaled_update_squares_body, _scaled_update_squares_signature)
scaled_step = CompiledLoop(_scaled_step_body, _scaled_step_signature)
vector_sums = CompiledLoop(_vector_sums_body, _vector_sums_signature)
vector_step = CompiledLoop(_vector_step_body, _vector_step_signature)


def row_bounds(n_matrices: int, n_rows: int, n_cols: int) -> np.ndarray:
    """The units of a layer of ``n_matrices`` matrices of ``n_rows x n_cols``: blocks of
    rows (at least ``UNIT_ELEMENTS`` elements and ``MIN_UNIT_ROWS`` rows where the matrix
    has them), none straddling two matrices, as the row index each starts at, plus the
    end."""
    rows_per_unit = min(n_rows, max(MIN_UNIT_ROWS, -(-UNIT_ELEMENTS // max(n_cols, 1))))
    starts = [
        matrix * n_rows + start
        for matrix in range(n_matrices)
        for start in range(0, n_rows, rows_per_unit)
    ]
    return np.array([*starts, n_matrices * n_rows], dtype=np.int64)
