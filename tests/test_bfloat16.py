"""The bfloat16 storage primitives for low-precision state (kernels/bfloat16.py): exact
decoding, nearest and stochastic encoding, the counter-based random numbers, and why
stochastic rounding is needed for a beta2 = 0.999 average."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from fastoptim.kernels import bfloat16


@numba.njit
def _encode_all(values, key, nearest):
    # the kernels' way: the random bits of element i are the Weyl sequence key + i * PHI
    out = np.empty(values.size, dtype=np.uint16)
    for i in range(values.size):
        r = bfloat16.ROUND_TO_NEAREST if nearest else bfloat16.weyl(key, i, bfloat16.PHI)
        out[i] = bfloat16.encode(values[i], r)
    return out


@numba.njit
def _decode_all(codes):
    out = np.empty(codes.size, dtype=np.float32)
    for i in range(codes.size):
        out[i] = bfloat16.decode(codes[i])
    return out


def _randoms(seed, step, n):
    """The low 16 bits a kernel adds at step ``step`` to elements 0..n-1 (stream 0)."""
    (key,) = bfloat16.step_keys(seed, step, 1)
    return bfloat16.random_bits(key, np.arange(n)) & 0xFFFF


def _bfloat16_nearest_reference(values):
    """Round float32 to bfloat16 the plain numpy way: top 16 bits after adding half a unit."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x8000) >> 16).astype(np.uint16)


def test_decoding_is_exact_for_every_bit_pattern():
    codes = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    decoded = _decode_all(codes)
    expected = (codes.astype(np.uint32) << 16).view(np.float32)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(decoded[finite], expected[finite])
    assert np.isnan(decoded[np.isnan(expected)]).all()


def test_nearest_encoding_matches_a_plain_numpy_rounding_and_round_trips():
    rng = np.random.default_rng(0)
    values = (rng.standard_normal(100_000) * np.exp(rng.uniform(-30, 30, 100_000))).astype(
        np.float32
    )
    codes = _encode_all(values, 0, True)
    np.testing.assert_array_equal(codes, _bfloat16_nearest_reference(values))
    np.testing.assert_array_equal(bfloat16.encode_array(values, bfloat16.ROUND_TO_NEAREST), codes)
    exact = _decode_all(codes)  # values a bfloat16 holds exactly encode to themselves
    np.testing.assert_array_equal(_encode_all(exact, 0, True), codes)
    np.testing.assert_array_equal(_encode_all(exact, 12345, False), codes)
    np.testing.assert_array_equal(bfloat16.decode_array(codes), exact)


def test_the_numpy_twins_encode_as_the_kernels_do():
    rng = np.random.default_rng(1)
    values = (rng.standard_normal(50_000) * np.exp(rng.uniform(-20, 20, 50_000))).astype(np.float32)
    values[:4] = [np.nan, -np.nan, np.inf, -np.inf]
    key = 0xDEADBEEF
    bits = bfloat16.random_bits(key, np.arange(values.size))
    np.testing.assert_array_equal(
        bfloat16.encode_array(values, bits), _encode_all(values, key, False)
    )


def test_non_finite_values_keep_their_class_and_finite_ones_up_to_the_largest_stay_finite():
    largest = np.float32(bfloat16.decode_array(np.array([0x7F7F], np.uint16))[0])  # ~3.39e38
    special = np.array([np.inf, -np.inf, np.nan, -np.nan, largest, -largest], dtype=np.float32)
    for nearest in (True, False):
        decoded = _decode_all(_encode_all(special, 77, nearest))
        assert decoded[0] == np.inf and decoded[1] == -np.inf
        assert np.isnan(decoded[2]) and np.isnan(decoded[3])
        assert decoded[4] == largest and decoded[5] == -largest


def test_stochastic_rounding_is_unbiased():
    # 1 + 2**-10 lies between two bfloat16 neighbours (1 and 1 + 2**-7), an eighth of the way
    value = np.float32(1 + 2**-10)
    values = np.full(200_000, value, dtype=np.float32)
    decoded = _decode_all(_encode_all(values, 0x1234567, False)).astype(np.float64)
    assert set(np.unique(decoded)) == {1.0, 1 + 2**-7}
    mean = decoded.mean()
    # the share rounded up is binomial(n, 1/8): its standard error is sqrt(p(1-p)/n)
    standard_error = 2**-7 * np.sqrt(0.125 * 0.875 / values.size)
    assert abs(mean - float(value)) < 5 * standard_error
    nearest = _decode_all(_encode_all(values, 0, True))
    assert (nearest == 1.0).all()  # nearest rounding always loses the 2**-10


def test_the_random_numbers_are_a_function_of_the_counter_only():
    first = _randoms(11, 4, 50_000)
    np.testing.assert_array_equal(first, _randoms(11, 4, 50_000))  # reproducible
    assert first.max() < 2**16
    assert not np.array_equal(first, _randoms(11, 5, 50_000))  # another step, other numbers
    assert not np.array_equal(first, _randoms(12, 4, 50_000))  # another seed too
    counts = np.bincount(first >> 12, minlength=16)  # 16 bins of the 16-bit range
    expected = first.size / 16
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    assert chi_square < 50  # 15 degrees of freedom: 50 is far in the tail


def test_any_65536_consecutive_elements_get_every_16_bit_number_once():
    (key,) = bfloat16.step_keys(3, 9, 1)
    low = bfloat16.random_bits(key, np.arange(1000, 1000 + 2**16)) & 0xFFFF
    assert np.unique(low).size == 2**16


def test_one_element_over_many_steps_gets_uniform_bits():
    """Across steps an element's bits come from the step's key: uniform (chi-square)."""
    bits = np.array([_randoms(0, t, 6)[5] for t in range(1, 20_001)])
    counts = np.bincount(bits >> 12, minlength=16)
    expected = bits.size / 16
    assert float(((counts - expected) ** 2 / expected).sum()) < 50


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_a_beta2_average_follows_shrinking_gradients_only_with_stochastic_rounding(rounding):
    """v = 0.999 v + 0.001 g**2 with g**2 falling from 1 to 0.01: in float32 v falls from 1
    towards 0.01. Stored in bfloat16 with nearest rounding, 0.999 v rounds back to v (the
    change is below half a unit, 2**-9 of v), so v never moves; stochastic rounding keeps
    the expected value and follows."""
    steps, n = 3000, 2000
    v32 = np.ones(n, dtype=np.float32)
    codes = _encode_all(v32, 0, True)
    for t in range(1, steps + 1):
        g2 = np.float32(0.01)
        v32 = np.float32(0.999) * v32 + np.float32(0.001) * g2
        updated = np.float32(0.999) * _decode_all(codes) + np.float32(0.001) * g2
        (key,) = bfloat16.step_keys(9, t, 1)
        codes = _encode_all(updated, key, rounding == "nearest")
    stored = _decode_all(codes).astype(np.float64)
    exact = float(v32[0])  # 0.01 + 0.99 * 0.999**3000, about 0.059
    if rounding == "nearest":
        assert stored.min() == 1.0  # stuck at its start
    else:
        assert abs(stored.mean() - exact) < 0.01 * exact
