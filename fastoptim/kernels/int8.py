"""8-bit blockwise state (after Dettmers et al. 2022), stored: one code per element and one
float32 scale per block, decoded and encoded inside the kernels.

A block's scale is the largest magnitude among its values, computed from the new values of
the step that writes them. Codes map a value ``x`` of a block with scale ``a`` through a
square root, which gives more codes to the small values that dominate optimizer state:

- signed states (first moments, momentum): ``c = round(127 sign(x) sqrt(|x| / a))`` in
  int8, decoded as ``x = a c |c| / 127**2``;
- unsigned states (second moments, sums of squares): ``c = round(255 sqrt(x / a))`` in
  uint8, decoded as ``x = a c**2 / 255**2``.

Both decode and encode with arithmetic alone (no table: no gathers, so the loops vectorise),
and an unsigned state's square root is the one its update computes anyway (Adam's
``sqrt(v)``). ``benchmarks/int8_maps.py`` measured this map against a linear one, a
softsign one and bitsandbytes' dynamic map: it gave Adam's direction the smallest error.
Rounding is to nearest: the scale follows the block's magnitude, so a decaying average
does not round away (its codes stay, its scale shrinks).

A block whose new values hold a NaN or an Inf gets a non-finite scale: every value of that
block then decodes to NaN or Inf (never to a silent number).
"""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

SIGNED_LEVELS = 127
UNSIGNED_LEVELS = 255
# a block whose largest magnitude is below this is stored as zeros (its inverse scale
# would overflow float32)
TINY = np.float32(2.0**-100)

_I32 = ir.IntType(32)


@intrinsic
def magnitude_bits(typingctx, value):
    """The bits of ``|value|`` (a float32) as an int32: ordered as the magnitudes are, with
    any NaN above Inf above every finite value, so an integer max over them is the largest
    magnitude or a NaN (and vectorises without fast-math)."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        bits = builder.bitcast(args[0], _I32)
        return builder.and_(bits, ir.Constant(_I32, 0x7FFFFFFF))

    return types.int32(value), codegen


@intrinsic
def larger_bits(typingctx, a, b):
    """The larger of two int32 (in 32-bit lanes: Numba's own max widens to 64 bits)."""
    if a != types.int32 or b != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(builder.icmp_signed(">", args[0], args[1]), args[0], args[1])

    return types.int32(a, b), codegen


@intrinsic
def from_bits(typingctx, bits):
    """The float32 whose bits are the int32 ``bits``."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(bits), codegen


@numba.njit(inline="always")
def decode_signed(code, step):
    """A signed state's value from its int8 ``code``; ``step`` is the block's scale / 127**2."""
    c = np.float32(code)
    return step * (c * abs(c))


@numba.njit(inline="always")
def decode_unsigned(code, step):
    """An unsigned state's value from its uint8 ``code``; ``step`` is the block's scale / 255**2."""
    c = np.float32(code)
    return step * (c * c)


@numba.njit(inline="always")
def encode_signed(value, inverse):
    """The int8 code of a signed value; ``inverse`` is 127**2 / the block's scale (0 for a
    block of zeros). Rounds half away from zero; the largest magnitude gets +-127."""
    rounded = np.sqrt(abs(value) * inverse) + np.float32(0.5)
    return np.int8(math.copysign(rounded, value))


@numba.njit(inline="always")
def encode_unsigned(root, inverse):
    """The uint8 code of an unsigned value from its square root ``root``; ``inverse`` is
    255 / the square root of the block's scale (0 for a block of zeros)."""
    return np.uint8(root * inverse + np.float32(0.5))


@numba.njit(inline="always")
def signed_inverse(largest):
    """``encode_signed``'s inverse for a block whose largest magnitude is ``largest``."""
    if largest > TINY:
        return np.float32(SIGNED_LEVELS * SIGNED_LEVELS) / largest
    return np.float32(0)


@numba.njit(inline="always")
def unsigned_inverse(largest_root):
    """``encode_unsigned``'s inverse for a block whose largest square root is ``largest_root``."""
    if largest_root > TINY:
        return np.float32(UNSIGNED_LEVELS) / largest_root
    return np.float32(0)


# -- numpy twins (references, tests, conversions) -------------------------------------------
def block_bounds(sizes, block: int) -> np.ndarray:
    """The bounds of the blocks of layers of ``sizes`` laid end to end: each layer cut into
    blocks of ``block`` elements (the last one shorter), never one across two layers."""
    bounds = [0]
    for size in sizes:
        start = bounds[-1]
        bounds.extend(range(start + block, start + size, block))
        bounds.append(start + size)
    return np.asarray(bounds, dtype=np.int64)


def quantize(values: np.ndarray, signed: bool, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The codes and scales of float32 ``values`` in blocks ``bounds``, as the kernels store
    them (the same float32 arithmetic, bit for bit)."""
    values = np.asarray(values, dtype=np.float32)
    codes = np.empty(values.size, dtype=np.int8 if signed else np.uint8)
    scales = np.empty(len(bounds) - 1, dtype=np.float32)
    with np.errstate(all="ignore"):
        for b, (start, stop) in enumerate(itertools.pairwise(bounds)):
            block = values[start:stop]
            if signed:
                largest = _largest(block)
                scales[b] = largest
                inverse = np.float32(SIGNED_LEVELS**2) / largest if largest > TINY else 0
                rounded = np.sqrt(np.abs(block) * np.float32(inverse)) + np.float32(0.5)
                codes[start:stop] = np.trunc(np.copysign(rounded, block)).astype(np.int8)
            else:
                roots = np.sqrt(block)
                largest = _largest(roots)
                scales[b] = largest * largest
                inverse = np.float32(UNSIGNED_LEVELS) / largest if largest > TINY else 0
                rounded = roots * np.float32(inverse) + np.float32(0.5)
                codes[start:stop] = np.nan_to_num(rounded, nan=0, posinf=0).astype(np.uint8)
    return codes, scales


def dequantize(
    codes: np.ndarray, scales: np.ndarray, signed: bool, bounds: np.ndarray
) -> np.ndarray:
    """The float32 values of ``codes`` with block ``scales``, as the kernels decode them."""
    c = np.asarray(codes).astype(np.float32)
    levels = SIGNED_LEVELS if signed else UNSIGNED_LEVELS
    steps = np.asarray(scales, np.float32) * np.float32(1.0 / levels**2)
    per_element = np.repeat(steps, np.diff(bounds))
    with np.errstate(all="ignore"):
        return per_element * (c * np.abs(c) if signed else c * c)


def _largest(block: np.ndarray) -> np.float32:
    """The largest magnitude of a block, NaN if it holds one (as the kernels' bit max)."""
    if block.size == 0:
        return np.float32(0)
    bits = (block.view(np.int32) & 0x7FFFFFFF).max()
    return np.int32(bits).view(np.float32)
