"""bfloat16 state, stored: bit patterns in uint16, decoded and encoded inside the kernels.

numpy and Numba have no bfloat16 type. A bfloat16 value is the top 16 bits of a float32, so
decoding is a shift and a bit cast, and encoding keeps the top 16 bits after adding a
16-bit number to the bottom 16: half a unit rounds to nearest; a uniform random number
rounds stochastically (the expected stored value is the float32 value, so the small updates
of a moving average survive on average instead of rounding away).

The random bits of element ``i`` at one step are a Weyl sequence over the global element
index, ``key + i * PHI (mod 2**32)``, with ``key`` a splitmix64 hash of (seed, step, stream)
made once per step in Python. For a fixed step, the low 16 bits of any 65,536 consecutive
elements take every value once, as do the high 16 bits over the index; across steps each
element's bits are uniform because the key is. Inside a kernel the sequence costs one
vector add per element (a full hash per element, measured: the Adam kernel became bound by
arithmetic at 0.57-0.72x of fp32 state). The bits depend on the index alone: the same for any
thread count, after a save and reload, and on any shard.

Every operation here is an LLVM intrinsic on 32-bit lanes: Numba's own integer arithmetic
widens to 64 bits, which halves the vector width.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

PHI = 0x9E3779B9  # 2**32 / golden ratio, odd: the Weyl sequence's step
# further streams (states 3 and 4 of an element) step by another odd constant
PHI_2 = 0x85EBCA6B
ROUND_TO_NEAREST = 0x8000  # the random bits that round to nearest (ties away from zero)
STATES_PER_STREAM = 2  # a 32-bit stream gives each of two states 16 bits

_I32 = ir.IntType(32)


def _constant(value: int) -> ir.Constant:
    return ir.Constant(_I32, value)


def _as_i32(builder, value, numba_type):
    """An integer argument as an LLVM i32 (truncated or zero-extended)."""
    if isinstance(numba_type, types.Integer) and numba_type.bitwidth != 32:
        if numba_type.bitwidth > 32:
            return builder.trunc(value, _I32)
        return builder.zext(value, _I32)
    return value


@intrinsic
def decode(typingctx, code):
    """The float32 value of the bfloat16 bit pattern ``code`` (a uint16)."""
    if not isinstance(code, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        bits = builder.shl(_as_i32(builder, args[0], code), _constant(16))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(code), codegen


@intrinsic
def encode(typingctx, value, random):
    """The bfloat16 bit pattern (uint16) of the float32 ``value`` after adding the low 16
    bits of ``random`` below the kept bits: stochastic rounding with uniform random bits,
    round to nearest with ``ROUND_TO_NEAREST``. A NaN stays a NaN (quiet), an Inf stays an
    Inf; a finite value beyond the largest bfloat16 may round to Inf, as in any rounding
    to bfloat16."""
    if value != types.float32 or not isinstance(random, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        number, bits16 = args[0], builder.and_(_as_i32(builder, args[1], random), _constant(0xFFFF))
        bits = builder.bitcast(number, _I32)
        rounded = builder.lshr(builder.add(bits, bits16), _constant(16))
        quiet_nan = builder.or_(builder.lshr(bits, _constant(16)), _constant(0x40))
        is_nan = builder.fcmp_unordered("uno", number, number)
        kept = builder.select(is_nan, quiet_nan, rounded)
        return builder.trunc(kept, ir.IntType(16))

    return types.uint16(value, random), codegen


@intrinsic
def weyl(typingctx, key, index, step):
    """``key + index * step`` in 32-bit arithmetic: the random bits of element ``index``."""

    def codegen(context, builder, signature, args):
        product = builder.mul(_as_i32(builder, args[1], index), _as_i32(builder, args[2], step))
        return builder.add(product, _as_i32(builder, args[0], key))

    return types.uint32(key, index, step), codegen


@intrinsic
def high16(typingctx, bits):
    """The top 16 bits of a uint32, in the low 16 (the second state's random bits)."""

    def codegen(context, builder, signature, args):
        return builder.lshr(_as_i32(builder, args[0], bits), _constant(16))

    return types.uint32(bits), codegen


def _splitmix64(z: int) -> int:
    mask = (1 << 64) - 1
    z = (z + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def step_keys(seed: int, t: int, streams: int) -> tuple[int, ...]:
    """The 32-bit key of each random stream at step ``t``: a hash of (seed, t, stream)
    (seed and stream in the top byte, t below; one splitmix64 each: a step pays for it)."""
    counter = ((seed & 0xFF) << 56) ^ (t & 0xFFFFFFFFFFFF)
    return tuple(_splitmix64(counter ^ (stream << 48)) >> 32 for stream in range(streams))


def stream_step(stream: int) -> int:
    """The Weyl step of random stream ``stream``."""
    return PHI if stream == 0 else PHI_2


def random_bits(key: int, index: np.ndarray, stream: int = 0) -> np.ndarray:
    """The random bits of the elements ``index`` (uint32) for a stream's ``key``: the
    kernels' sequence, in numpy (for references and tests)."""
    index = np.asarray(index, dtype=np.uint64)
    return ((index * np.uint64(stream_step(stream)) + np.uint64(key)) & 0xFFFFFFFF).astype(
        np.uint32
    )


def encode_array(values: np.ndarray, bits: np.ndarray | int) -> np.ndarray:
    """``encode`` of float32 ``values`` with ``bits`` (their low 16 bits), in numpy."""
    raw = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((raw + (np.asarray(bits, dtype=np.uint64) & 0xFFFF)) >> 16) & 0xFFFF
    quiet_nan = ((raw >> 16) | 0x40) & 0xFFFF
    return np.where(np.isnan(values), quiet_nan, rounded).astype(np.uint16)


def decode_array(codes: np.ndarray) -> np.ndarray:
    """``decode`` of uint16 ``codes``, in numpy."""
    return (np.asarray(codes, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
