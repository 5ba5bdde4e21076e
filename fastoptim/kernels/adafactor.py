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
from fastoptim.kernels.lanes import LANES, fold, new_lanes
from fastoptim.kernels.prefetch import prefetch

# the four-row loop of the u**2 pass asks for each row's data this many elements ahead: four
# rows read side by side are four streams a row apart, and the hardware prefetchers fell
# behind (a 1000 x 9999 matrix on a Zen 5, 2 threads, interleaved: 0.90-1.19 -> 0.81-0.90
# ms); in the first pass, whose arithmetic is heavier, the hints did not help
ROW_PREFETCH_AHEAD = 2048
# the rows of a unit hold at least this many elements, and at least MIN_UNIT_ROWS rows (each
# unit writes and the caller reads its column sums: 1/64 of a wide layer's size, in float64)
UNIT_ELEMENTS = 8192
MIN_UNIT_ROWS = 64


# Every row is read in chunks of lanes.LANES elements through slices, which LLVM knows to be
# in bounds (an index ``row * n + c`` is not: its wraparound check stops the vectorising).
# Rows go four at a time where a unit has them: a column's partial, read and written in L2
# for wide layers, then changes once per four elements.


@numba.njit(inline="always")
def _four_rows(a, offset, n, chunk, end):
    # columns chunk:end of the four rows starting at offset, offset + n, ...
    return (
        a[offset + chunk : offset + end],
        a[offset + n + chunk : offset + n + end],
        a[offset + 2 * n + chunk : offset + 2 * n + end],
        a[offset + 3 * n + chunk : offset + 3 * n + end],
    )


@numba.njit(inline="always")
def _ask_for_four_rows(a, offset, n, chunk, end):
    # hint: columns chunk:end of the four rows at offset, offset + n, ..., ROW_PREFETCH_AHEAD on
    for j in range(offset + chunk + ROW_PREFETCH_AHEAD, offset + end + ROW_PREFETCH_AHEAD, 16):
        prefetch(a, j)
        prefetch(a, j + n)
        prefetch(a, j + 2 * n)
        prefetch(a, j + 3 * n)


@numba.njit(inline="always")
def _four_lane_sets(lanes, width):
    # the first ``width`` lanes of sets 0 to 3
    return (
        lanes[:width],
        lanes[LANES : LANES + width],
        lanes[2 * LANES : 2 * LANES + width],
        lanes[3 * LANES : 3 * LANES + width],
    )


@numba.njit(inline="always")
def _sums_of_four_rows(lanes, cols, p, g, offset, n, scale):
    # rows at offset, +n, +2n, +3n: lanes 0-3 take each row's (scale g)**2, lanes 4 all p**2
    for chunk in range(0, n, LANES):
        end = min(chunk + LANES, n)
        width = end - chunk
        g0, g1, g2, g3 = _four_rows(g, offset, n, chunk, end)
        p0, p1, p2, p3 = _four_rows(p, offset, n, chunk, end)
        r0, r1, r2, r3 = _four_lane_sets(lanes, width)
        squares = lanes[4 * LANES : 4 * LANES + width]
        column = cols[chunk:end]
        for k in range(width):
            x0 = np.float64(g0[k]) * scale
            x1 = np.float64(g1[k]) * scale
            x2 = np.float64(g2[k]) * scale
            x3 = np.float64(g3[k]) * scale
            s0, s1, s2, s3 = x0 * x0, x1 * x1, x2 * x2, x3 * x3
            r0[k] += s0
            r1[k] += s1
            r2[k] += s2
            r3[k] += s3
            column[k] += (s0 + s1) + (s2 + s3)
            q0, q1 = np.float64(p0[k]), np.float64(p1[k])
            q2, q3 = np.float64(p2[k]), np.float64(p3[k])
            squares[k] += (q0 * q0 + q1 * q1) + (q2 * q2 + q3 * q3)


@numba.njit(inline="always")
def _sums_of_one_row(lanes, cols, p, g, offset, n, scale):
    # one row: lanes 0 take its (scale g)**2, lanes 4 its p**2
    for chunk in range(0, n, LANES):
        end = min(chunk + LANES, n)
        width = end - chunk
        g0 = g[offset + chunk : offset + end]
        p0 = p[offset + chunk : offset + end]
        r0 = lanes[:width]
        squares = lanes[4 * LANES : 4 * LANES + width]
        column = cols[chunk:end]
        for k in range(width):
            x0 = np.float64(g0[k]) * scale
            q0 = np.float64(p0[k])
            r0[k] += x0 * x0
            column[k] += x0 * x0
            squares[k] += q0 * q0


@numba.njit(inline="always")
def _row_sum(lanes, which):
    # fold lanes set ``which`` into one row's sum and zero it for the next row
    row_lanes = lanes[which * LANES : (which + 1) * LANES]
    total = fold(row_lanes)
    row_lanes[:] = 0.0
    return total


def _factored_sums_body(loop):
    def factored_sums(p, g, scale, n_cols, row_bounds, row_sums, col_partials, p_partials):
        # unit u: rows row_bounds[u]:row_bounds[u + 1]; writes their row sums of (scale g)**2,
        # its column sums col_partials[u * n_cols:(u + 1) * n_cols] and its sum of p**2, in
        # one sweep of each row (a wide row does not stay in L1 for a second)
        for unit in loop(p_partials.size):
            cols = col_partials[unit * n_cols : (unit + 1) * n_cols]
            cols[:] = 0.0
            lanes = new_lanes(5)
            row, last = row_bounds[unit], row_bounds[unit + 1]
            while row + 4 <= last:
                _sums_of_four_rows(lanes, cols, p, g, row * n_cols, n_cols, scale)
                for which in range(4):
                    row_sums[row + which] = _row_sum(lanes, which)
                row += 4
            while row < last:
                _sums_of_one_row(lanes, cols, p, g, row * n_cols, n_cols, scale)
                row_sums[row] = _row_sum(lanes, 0)
                row += 1
            p_partials[unit] = fold(lanes[4 * LANES :])

    return factored_sums


@numba.njit(inline="always")
def _weighted_squares_of_four_rows(lanes, g, offset, n, scale, w0, w1, w2, w3, col_weights):
    # lanes += sum over the four rows of (scale g)**2 row_weight, times the column's weight
    for chunk in range(0, n, LANES):
        end = min(chunk + LANES, n)
        width = end - chunk
        g0, g1, g2, g3 = _four_rows(g, offset, n, chunk, end)
        _ask_for_four_rows(g, offset, n, chunk, end)
        weights = col_weights[chunk:end]
        into = lanes[:width]
        for k in range(width):
            x0 = np.float64(g0[k]) * scale
            x1 = np.float64(g1[k]) * scale
            x2 = np.float64(g2[k]) * scale
            x3 = np.float64(g3[k]) * scale
            rows = (x0 * x0 * w0 + x1 * x1 * w1) + (x2 * x2 * w2 + x3 * x3 * w3)
            into[k] += rows * weights[k]


@numba.njit(inline="always")
def _weighted_squares_of_one_row(lanes, g, offset, n, scale, w0, col_weights):
    for chunk in range(0, n, LANES):
        end = min(chunk + LANES, n)
        g0 = g[offset + chunk : offset + end]
        weights = col_weights[chunk:end]
        into = lanes[: end - chunk]
        for k in range(g0.size):
            x0 = np.float64(g0[k]) * scale
            into[k] += x0 * x0 * w0 * weights[k]


def _scaled_update_squares_body(loop):
    def scaled_update_squares(g, scale, n_cols, n_rows, row_bounds, row_factors, col_weights,
                              u_partials):  # fmt: skip
        # where no clamp applies: u**2 = (scale g)**2 / row_factor * col_weight, the row's
        # quotient taken once per row, col_weights = 1 / col_var (update_factors), in float64
        for unit in loop(u_partials.size):
            lanes = new_lanes(1)
            row, last = row_bounds[unit], row_bounds[unit + 1]
            cols = (row // n_rows) * n_cols
            weights = col_weights[cols : cols + n_cols]
            while row + 4 <= last:
                _weighted_squares_of_four_rows(
                    lanes, g, row * n_cols, n_cols, scale, 1.0 / np.float64(row_factors[row]),
                    1.0 / np.float64(row_factors[row + 1]),
                    1.0 / np.float64(row_factors[row + 2]),
                    1.0 / np.float64(row_factors[row + 3]), weights,
                )  # fmt: skip
                row += 4
            while row < last:
                weight = 1.0 / np.float64(row_factors[row])
                _weighted_squares_of_one_row(lanes, g, row * n_cols, n_cols, scale, weight, weights)
                row += 1
            u_partials[unit] = fold(lanes)

    return scaled_update_squares


def _factored_update_squares_body(loop):
    def factored_update_squares(
        g, scale, n_cols, n_rows, row_bounds, row_factors, col_var, eps1_squared, u_partials
    ):
        # each unit's sum of u**2, u = scale g / sqrt(max(row_factor * col_var, eps1**2))
        for unit in loop(u_partials.size):
            lanes = new_lanes(1)
            first, last = row_bounds[unit], row_bounds[unit + 1]
            cols = (first // n_rows) * n_cols
            variances = col_var[cols : cols + n_cols]
            for row in range(first, last):
                factor = row_factors[row]
                offset = row * n_cols
                for chunk in range(0, n_cols, LANES):
                    end = min(chunk + LANES, n_cols)
                    g0 = g[offset + chunk : offset + end]
                    column = variances[chunk:end]
                    into = lanes[: end - chunk]
                    for k in range(g0.size):
                        x0 = np.float64(g0[k]) * scale
                        into[k] += x0 * x0 / max(factor * column[k], eps1_squared)
            u_partials[unit] = fold(lanes)

    return factored_update_squares


def _scaled_step_body(loop):
    def scaled_step(p, g, decay, step, n_cols, n_rows, row_bounds, row_factors, col_roots,
                    row_coefficients):  # fmt: skip
        # where no clamp applies: p = decay p - (step / sqrt(row_factor)) g col_root, the
        # row's root taken once per row in float64 and rounded to the parameters' dtype by
        # its store into row_coefficients (the unit's own rows); col_roots = 1 / sqrt(col_var)
        # (update_factors); ``step`` carries the gradient's scale and sign
        for unit in loop(row_bounds.size - 1):
            first, last = row_bounds[unit], row_bounds[unit + 1]
            cols = (first // n_rows) * n_cols
            roots = col_roots[cols : cols + n_cols]
            for row in range(first, last):
                params = p[row * n_cols : (row + 1) * n_cols]
                grads = g[row * n_cols : (row + 1) * n_cols]
                row_coefficients[row] = step / np.sqrt(np.float64(row_factors[row]))
                coefficient = row_coefficients[row]
                for c in range(n_cols):
                    params[c] = params[c] * decay - coefficient * (grads[c] * roots[c])

    return scaled_step


def _update_factors_body(loop):
    def update_factors(row_sums, col_partials, firsts, n_rows, n_cols, weight, eps1, row_var,
                       col_var, row_factors, col_weights, col_roots):  # fmt: skip
        # R += weight (row mean of g**2 - R) and C likewise, in float64 rounded once; each
        # matrix's column sums are its units' partials added in order (into its first
        # unit's, which are scratch); then the row factors R / max(mean(R), eps1) and, for
        # the passes where no clamp applies, 1 / C and 1 / sqrt(C). Returns the least row
        # factor times the least C.
        n_units = col_partials.size // n_cols
        least_factor = least_col = np.inf
        for matrix in loop(firsts.size):
            stop = firsts[matrix + 1] if matrix + 1 < firsts.size else n_units
            first = firsts[matrix] * n_cols
            totals = col_partials[first : first + n_cols]
            for unit in range(firsts[matrix] + 1, stop):  # a unit's row of partials at a time
                totals += col_partials[unit * n_cols : (unit + 1) * n_cols]
            for c in range(matrix * n_cols, (matrix + 1) * n_cols):
                old = np.float64(col_var[c])
                col_var[c] = old + weight * (totals[c - matrix * n_cols] / n_rows - old)
                new = np.float64(col_var[c])
                least_col = min(least_col, new)
                col_weights[c] = 1.0 / new
                col_roots[c] = 1.0 / np.sqrt(new)
            row_mean = 0.0
            for r in range(matrix * n_rows, (matrix + 1) * n_rows):
                old = np.float64(row_var[r])
                row_var[r] = old + weight * (row_sums[r] / n_cols - old)
                row_mean += np.float64(row_var[r])
            row_mean = max(row_mean / n_rows, eps1)
            for r in range(matrix * n_rows, (matrix + 1) * n_rows):
                row_factors[r] = np.float64(row_var[r]) / row_mean
                least_factor = min(least_factor, np.float64(row_factors[r]))
        return least_factor * least_col

    return update_factors


def _factored_step_body(loop):
    def factored_step(
        p, g, scale, decay, step, n_cols, n_rows, row_bounds, row_factors, col_var, eps1_squared
    ):
        # p = decay p - step u, in the parameters' dtype
        for unit in loop(row_bounds.size - 1):
            first, last = row_bounds[unit], row_bounds[unit + 1]
            cols = (first // n_rows) * n_cols
            variances = col_var[cols : cols + n_cols]
            for row in range(first, last):
                params = p[row * n_cols : (row + 1) * n_cols]
                grads = g[row * n_cols : (row + 1) * n_cols]
                factor = row_factors[row]
                for c in range(n_cols):
                    variance = max(factor * variances[c], eps1_squared)
                    update = (scale * grads[c]) / np.sqrt(variance)
                    params[c] = params[c] * decay - step * update

    return factored_step


def _vector_sums_body(loop):
    def vector_sums(p, g, v, scale, weight, eps1_squared, bounds, p_partials, u_partials):
        # v moves a fraction ``weight`` of the way to (scale g)**2 (written); each block's
        # sums of p**2 and of u**2, u = scale g / sqrt(max(v, eps1**2)), in lanes: one
        # sweep of each block (three sweeps, the block in L2, were 1.8x the roof's pass)
        for block in loop(p_partials.size):
            start, stop = bounds[block], bounds[block + 1]
            lanes = new_lanes(2)
            for chunk in range(start, stop, LANES):
                end = min(chunk + LANES, stop)
                p0, g0, v0 = p[chunk:end], g[chunk:end], v[chunk:end]
                p_into, u_into = lanes[: end - chunk], lanes[LANES : LANES + end - chunk]
                for k in range(g0.size):
                    x = scale * g0[k]
                    new = v0[k] + weight * (x * x - v0[k])
                    v0[k] = new
                    q = np.float64(p0[k])
                    p_into[k] += q * q
                    y = np.float64(g0[k]) * scale
                    u_into[k] += y * y / max(np.float64(new), eps1_squared)
            p_partials[block] = fold(lanes[:LANES])
            u_partials[block] = fold(lanes[LANES:])

    return vector_sums


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
        readonly, types.float64, types.int64, types.int64, index, readonly, weights, out
    )


def _scaled_step_signature(dtype):
    value, writable, readonly, index, _, _ = _arrays(dtype)
    return types.none(
        writable, readonly, value, types.float64, types.int64, types.int64, index, readonly,
        readonly, writable,
    )  # fmt: skip


def _update_factors_signature(dtype):
    _, writable, _, index, out, sums = _arrays(dtype)
    return types.float64(
        sums, out, index, types.int64, types.int64, types.float64, types.float64, writable,
        writable, writable, out, writable,
    )  # fmt: skip


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
update_factors = CompiledLoop(_update_factors_body, _update_factors_signature)  # serial only
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
