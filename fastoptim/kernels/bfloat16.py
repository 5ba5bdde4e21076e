"""bfloat16 state, stored: bit patterns in uint16, decoded and encoded inside the kernels.

numpy and Numba have no bfloat16 type. A bfloat16 value is the top 16 bits of a float32, so
decoding is a shift and a bit cast, and encoding keeps the top 16 bits after adding to the
bottom 16 either half a unit (round to nearest) or a random 16-bit number (stochastic
rounding: the expected value of the stored number is the float32 value, so small updates of a
moving average survive on average instead of rounding away).

The random numbers come from a counter-based hash of (seed, step, global element index): the
same bits for any thread count and after a save and reload, nothing to store.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of the integer ``bits`` (an LLVM
    bit cast, no memory: it vectorises)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        if bits.bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        elif bits.bitwidth < 32:
            value = builder.zext(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def _bits_of_float32(typingctx, value):
    """The uint32 bit pattern of the float32 ``value``."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@numba.njit(inline="always")
def decode(code):
    """The float32 value of the bfloat16 bit pattern ``code`` (a uint16)."""
    return _float32_from_bits(np.uint32(code) << np.uint32(16))


@numba.njit(inline="always")
def encode(value, random16):
    """The bfloat16 bit pattern (uint16) of the float32 ``value``: stochastically rounded
    with a uniform random ``random16`` in [0, 65536), or to nearest with 32768 (ties up).
    NaN and Inf keep their class (a NaN stays a NaN); a finite value never becomes Inf."""
    bits = _bits_of_float32(np.float32(value))
    if (bits & np.uint32(0x7F800000)) == np.uint32(0x7F800000):  # NaN or Inf
        quiet = np.uint32(0x00400000) if (bits & np.uint32(0x007FFFFF)) != 0 else np.uint32(0)
        return np.uint16((bits | quiet) >> np.uint32(16))
    rounded = bits + np.uint32(random16)
    if (rounded & np.uint32(0x7F800000)) == np.uint32(0x7F800000):  # would overflow to Inf
        rounded = bits  # truncate: the largest finite bfloat16 of that sign
    return np.uint16(rounded >> np.uint32(16))


@numba.njit(inline="always")
def random16(seed, step, index):
    """A uniform 16-bit random number from the counter (seed, step, global element index):
    splitmix64's finaliser over the three combined, the top 16 bits."""
    z = (
        np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        + np.uint64(step) * np.uint64(0xBF58476D1CE4E5B9)
        + np.uint64(index)
    )
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.uint32(z >> np.uint64(48))


ROUND_TO_NEAREST = 32768  # the ``random16`` that rounds to nearest (ties away from zero)
