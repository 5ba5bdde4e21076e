"""One contiguous buffer for all parameters, with per-layer views."""

from fastoptim.flat.compare import layers_difference, layout_difference
from fastoptim.flat.flat_params import FlatParams, flatten
from fastoptim.flat.layout import ALIGNMENT_BYTES, Layout, aligned_empty

__all__ = [
    "ALIGNMENT_BYTES",
    "FlatParams",
    "Layout",
    "aligned_empty",
    "flatten",
    "layers_difference",
    "layout_difference",
]
