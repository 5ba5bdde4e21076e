"""Which contiguous slice of the flat buffer each rank owns, and the layout of a slice.

Slice boundaries fall on the clipping norm's block boundaries (every layer cut into
fixed blocks from its own start), so the ranks' block sums, put side by side, are exactly
the block sums of one process: the clipping norm has the same bits for any number of ranks.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from fastoptim import kernels
from fastoptim.flat import Layout
from fastoptim.optim.groups import Group, ResolvedGroup


def boundaries(layout: Layout, n_ranks: int) -> list[int]:
    """``n_ranks + 1`` offsets: rank r owns ``[b[r], b[r + 1])``, each as close to an equal
    share as the norm's blocks allow (the shares differ by at most one block)."""
    blocks = kernels.norm_block_bounds(layout.sizes)
    cuts = [0]
    for rank in range(1, n_ranks):
        target = rank * layout.size / n_ranks
        nearest = int(blocks[int(np.argmin(np.abs(blocks - target)))])
        cuts.append(max(nearest, cuts[-1]))
    cuts.append(layout.size)
    return cuts


def buffer_cuts(
    layout: Layout, cuts: Sequence[int], quantized: Collection[str] | None, block: int
) -> dict[str, list[int]]:
    """Where each rank's slice starts and stops in each kind of stored buffer: rank r owns
    ``[c[r], c[r + 1])`` of the buffers of kind ``c = buffer_cuts(...)[kind]``:

    - ``'element'``: the parameters and the state laid out like them (``cuts`` itself);
    - ``'scales'`` (int8 state only: ``quantized`` not None): the block scales of the
      ``quantized`` layers, in layout order (a cut falls on a block boundary: the norm's
      blocks are multiples of ``block``);
    - ``'small'`` (int8 state only): the float32 state of the layers int8 does not quantize, in layout order
      (no cut falls inside one: they are smaller than one norm block).
    """
    found: dict[str, list[int]] = {"element": list(cuts)}
    if quantized is None:
        return found
    found["scales"], found["small"] = [], []
    for cut in cuts:
        blocks = small = 0
        for name, offset, size in zip(layout.names, layout.offsets, layout.sizes, strict=True):
            inside = min(max(cut - offset, 0), size)  # this layer's elements before the cut
            if name in quantized:
                blocks += -(-inside // block)
            else:
                assert inside in (0, size), f"a cut at {cut} falls inside small layer {name}"
                small += inside
        found["scales"].append(blocks)
        found["small"].append(small)
    return found


def buffer_kind(member: str) -> str:
    """The kind of a stored buffer (see :func:`buffer_cuts`) from its checkpoint name."""
    prefix = member.split(".", 1)[0]
    return prefix if prefix in ("scales", "small") else "element"


def slice_layout(layout: Layout, start: int, stop: int) -> Layout:
    """The layers (or parts of layers) inside ``[start, stop)``, each flattened and keeping
    its name; empty layers are left out (there is nothing of them to update)."""
    names, shapes = [], []
    for name, offset, size in zip(layout.names, layout.offsets, layout.sizes, strict=True):
        low, high = max(offset, start), min(offset + size, stop)
        if high > low:
            names.append(name)
            shapes.append((high - low,))
    return Layout(names, shapes, layout.dtype)


def slice_groups(groups: Sequence[ResolvedGroup], names: Sequence[str]) -> list[Group]:
    """The optimizer's groups (the default group left out) restricted to ``names``; a group
    with no layer in the slice has nothing to do there and is left out."""
    present = set(names)
    local = []
    for group in groups[1:]:
        layers = [name for name in group.names if name in present]
        if layers:
            local.append(Group(layers, group.lr, group.weight_decay, group.frozen))
    return local
