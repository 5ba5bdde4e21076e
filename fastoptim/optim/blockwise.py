"""int8 state's storage: which layers are quantized, where their blocks and scales are, and
the float32 state of the layers too small to quantize.

A layer of at least ``SMALLEST_QUANTIZED`` elements keeps one code per element (int8 for a
signed state, uint8 for an unsigned one, in a buffer laid out like the parameters) and one
float32 scale per block of ``BLOCK`` elements (or the optimizer's ``block_size``); blocks
follow layers and never straddle two (kernels/int8.py has the map). Smaller layers (biases,
norms: few elements, often sensitive) keep float32 state, as bitsandbytes does below 4096
elements. A shard of a model quantizes the parts of the whole model's quantized layers,
whatever their size in the shard (``quantized=``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from fastoptim.flat import FlatParams, Layout
from fastoptim.flat.flat_params import aligned_zeros
from fastoptim.kernels import int8
from fastoptim.optim import state_dtypes

BLOCK = 256  # elements per quantization block
SMALLEST_QUANTIZED = 4096  # smaller layers keep float32 state


def quantizes(size: int) -> bool:
    """Whether int8 state quantizes a layer of ``size`` elements."""
    return size >= SMALLEST_QUANTIZED


def block_elements(block_size: int | None) -> int:
    """The elements per block of a ``block_size`` setting (None: ``BLOCK``)."""
    return block_size or BLOCK


def n_blocks(size: int, block: int = BLOCK) -> int:
    """The number of blocks of a quantized layer of ``size`` elements."""
    return -(-size // block)


def saved_block(size: int, n_scales: int) -> int:
    """The block size of a saved quantized layer of ``size`` elements with ``n_scales``
    scales: the smallest one that gives that many. Two block sizes give the same number
    only when both cover the layer in one block, which decodes alike."""
    for block in state_dtypes.BLOCK_SIZES:
        if n_blocks(size, block) == n_scales:
            return block
    raise ValueError(
        f"{n_scales} block scales fit no block size for {size} elements "
        f"(block sizes: {list(state_dtypes.BLOCK_SIZES)})"
    )


def code_dtype(unsigned: bool) -> np.dtype:
    return np.dtype(np.uint8 if unsigned else np.int8)


def layer_codes(
    values: np.ndarray, unsigned: bool, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """A quantized layer's codes (its shape) and block scales from its float values."""
    flat = np.asarray(values, dtype=np.float32).ravel()
    codes, scales = int8.quantize(flat, not unsigned, int8.block_bounds([flat.size], block))
    return codes.reshape(np.shape(values)), scales


def layer_values(
    codes: np.ndarray, scales: np.ndarray, unsigned: bool, block: int = BLOCK
) -> np.ndarray:
    """A quantized layer's float32 values (its shape) from its codes and block scales."""
    flat = np.asarray(codes).ravel()
    bounds = int8.block_bounds([flat.size], block)
    return int8.dequantize(flat, scales, not unsigned, bounds).reshape(np.shape(codes))


def quantized_layers(layout: Layout) -> frozenset[str]:
    """The layers of ``layout`` large enough to quantize."""
    return frozenset(
        n for n, size in zip(layout.names, layout.sizes, strict=True) if quantizes(size)
    )


def block_spans(layout: Layout, quantized: Collection[str], block: int = BLOCK) -> dict[str, slice]:
    """Where each of the ``quantized`` layers' block scales are, in one array over them in
    ``layout`` order."""
    spans, first = {}, 0
    for name, size in zip(layout.names, layout.sizes, strict=True):
        if name in quantized:
            spans[name] = slice(first, first + n_blocks(size, block))
            first += n_blocks(size, block)
    return spans


def small_layout(layout: Layout, quantized: Collection[str]) -> Layout:
    """The layout of ``layout``'s layers not ``quantized`` (float32 state)."""
    small = [i for i, name in enumerate(layout.names) if name not in quantized]
    return Layout([layout.names[i] for i in small], [layout.shapes[i] for i in small], np.float32)


class Int8Storage:
    """The int8 state of an optimizer over ``layout``: ``codes[key]`` (a FlatParams of
    codes laid out like the parameters; a small layer's codes are unused),
    ``scales[key]`` (float32, one per block of the quantized layers in layout order) and
    ``small[key]`` (a FlatParams of float32 over the small layers alone)."""

    def __init__(
        self,
        layout: Layout,
        state_names: Sequence[str],
        order: Sequence[str | None],
        kernel_unsigned: Collection[int],
        block: int = BLOCK,
        quantized: Collection[str] | None = None,
    ):
        """``order``: the kernel's states by name (None where an option keeps none);
        ``kernel_unsigned``: the positions in it of the states never negative; ``block``:
        elements per block; ``quantized``: the layers to quantize (default: those of at
        least ``SMALLEST_QUANTIZED`` elements)."""
        self.layout, self.block = layout, block
        self.kernel_unsigned = frozenset(kernel_unsigned)
        self.unsigned = frozenset(order[k] for k in self.kernel_unsigned if order[k])
        self.quantized = quantized_layers(layout) if quantized is None else frozenset(quantized)
        self.block_span = block_spans(layout, self.quantized, block)
        self.n_blocks = max((span.stop for span in self.block_span.values()), default=0)
        self.small_layout = small_layout(layout, self.quantized)
        self.codes = {
            key: FlatParams(layout, stored_dtype=code_dtype(key in self.unsigned))
            for key in state_names
        }
        self.scales = {
            key: aligned_zeros(self.n_blocks, np.dtype(np.float32)) for key in state_names
        }
        self.small = {key: FlatParams(self.small_layout) for key in state_names}

    def fill(self, key: str, value: float) -> None:
        """Set every element of state ``key`` to ``value`` (as the codes store it)."""
        self.small[key].buffer.fill(value)
        for name in self.quantized:
            values = np.full(self.layout.shapes[self.layout.index(name)], value, np.float32)
            codes, scales = layer_codes(values, key in self.unsigned, self.block)
            self.codes[key][name][...] = codes
            self.scales[key][self.block_span[name]] = scales

    def bounds(self, names: Sequence[str]) -> np.ndarray:
        """The block bounds of neighbouring quantized layers ``names``, from their start."""
        sizes = [self.layout.sizes[self.layout.index(n)] for n in names]
        return int8.block_bounds(sizes, self.block)

    def values(self, key: str, name: str) -> np.ndarray:
        """Layer ``name``'s float32 values of state ``key`` (a copy, the layer's shape)."""
        if name not in self.quantized:
            return np.array(self.small[key][name])
        scales = self.scales[key][self.block_span[name]]
        return layer_values(self.codes[key][name], scales, key in self.unsigned, self.block)

    def stored(self, key: str) -> dict[str, np.ndarray]:
        """State ``key`` as stored, by layer: codes for a quantized layer, float32 values for
        a small one (copies)."""
        return {name: np.array(self.target(key, name)) for name in self.layout.names}

    def stored_scales(self, key: str) -> dict[str, np.ndarray]:
        """The block scales of state ``key`` by quantized layer (copies)."""
        return {name: self.scales[key][span].copy() for name, span in self.block_span.items()}

    def target(self, key: str, name: str) -> np.ndarray:
        """The buffer view a saved array of layer ``name`` of state ``key`` replaces."""
        return self.codes[key][name] if name in self.quantized else self.small[key][name]

    def buffers(self) -> tuple[np.ndarray, ...]:
        """Every buffer of this storage (scales and the small layers' float32 state)."""
        return (*self.scales.values(), *(small.buffer for small in self.small.values()))

    @property
    def nbytes(self) -> int:
        """The bytes of every buffer: codes, scales and the small layers' state."""
        codes = sum(flat.buffer.nbytes for flat in self.codes.values())
        return codes + sum(buffer.nbytes for buffer in self.buffers())
