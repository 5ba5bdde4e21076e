"""Layout: the ordered names, shapes and offsets of every layer inside one flat buffer."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from fastoptim.dtypes import float_dtype

ALIGNMENT_BYTES = 64
GRAD_PREFIX = "d"  # the course keys the gradient of 'W1' as 'dW1'
_VERDICTS_KEPT = 8  # the last layouts compared with this one, and the answers


class Layout:
    """Where each named layer lives inside a flat buffer of one dtype.

    One layout is made per model and shared by the parameters, the gradients and every
    optimizer state buffer, so "same layout" is usually an identity check.

    Parameters
    ----------
    names : sequence of str
        Layer names in order (insertion order of the caller's dict, never sorted).
    shapes : sequence of tuple of int
        The shape of each layer; ``()`` is a 0-d layer and a zero in a shape an empty one.
    dtype : float32 or float64
        The element type of every buffer with this layout.
    """

    __slots__ = ("_index", "_verdicts", "dtype", "names", "offsets", "shapes", "size", "sizes")

    def __init__(self, names, shapes, dtype) -> None:
        names = tuple(names)
        shapes = tuple(tuple(int(d) for d in shape) for shape in shapes)
        if len(names) != len(shapes):
            raise ValueError(f"Layout: {len(names)} names but {len(shapes)} shapes")
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"Layout: layer names must be str, got {name!r}")
        if len(set(names)) != len(names):
            raise ValueError("Layout: layer names must be unique")
        sizes = tuple(math.prod(shape) for shape in shapes)
        offsets = []
        total = 0
        for size in sizes:
            offsets.append(total)
            total += size
        self.names: tuple[str, ...] = names
        self.shapes: tuple[tuple[int, ...], ...] = shapes
        self.dtype: np.dtype = float_dtype(dtype, "Layout dtype")
        self.offsets: tuple[int, ...] = tuple(offsets)
        self.sizes: tuple[int, ...] = sizes
        self.size: int = total
        self._index = {name: i for i, name in enumerate(names)}
        self._verdicts: dict[int, tuple[Layout, bool]] = {}

    def __reduce__(self):
        return (Layout, (self.names, self.shapes, self.dtype))

    def lines_up_with(self, other: Layout) -> bool:
        """Whether a buffer of this layout lines up element for element with one of
        ``other``: the same shapes in the same order and the same dtype, with names equal
        or differing only by the course's ``'d'`` prefix (``flatten(grads)`` of a course
        dict lines up with ``flatten(parameters)``). Decided once per pair of layouts."""
        if other is self:
            return True
        verdict = self._verdicts.get(id(other))
        if verdict is not None and verdict[0] is other:
            return verdict[1]
        answer = (
            self.dtype == other.dtype
            and self.shapes == other.shapes
            and name_relation(self.names, other.names) is not None
        )
        if len(self._verdicts) >= _VERDICTS_KEPT:
            del self._verdicts[next(iter(self._verdicts))]
        self._verdicts[id(other)] = (other, answer)
        return answer

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Layout):
            return NotImplemented
        return (
            self.names == other.names and self.shapes == other.shapes and self.dtype == other.dtype
        )

    def __hash__(self) -> int:
        return hash((self.names, self.shapes, self.dtype.str))

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __repr__(self) -> str:
        return f"Layout({len(self.names)} layers, {self.size} elements, {self.dtype})"

    def index(self, name: str) -> int:
        """Position of layer ``name``."""
        return self._index[name]

    def span(self, name: str) -> slice:
        """The slice of the flat buffer that holds layer ``name``."""
        i = self._index[name]
        return slice(self.offsets[i], self.offsets[i] + self.sizes[i])

    def describe(self) -> dict:
        """Names, shapes and dtype as plain Python data (for state dicts)."""
        return {
            "names": list(self.names),
            "shapes": [list(shape) for shape in self.shapes],
            "dtype": self.dtype.name,
        }

    def zeros(self) -> np.ndarray:
        """A new zeroed 1-D buffer of ``size`` elements starting on a 64-byte boundary."""
        buffer = aligned_empty(self.size, self.dtype)
        buffer.fill(0)
        return buffer


def aligned_empty(size: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialised 1-D array whose first element sits on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size * itemsize + ALIGNMENT_BYTES, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT_BYTES
    return raw[start : start + size * itemsize].view(dtype)


def name_relation(names: Sequence[str], expected: Sequence[str]) -> Callable[[str], str] | None:
    """How ``names`` map onto ``expected`` position by position: unchanged, without the
    course's ``'d'`` prefix, or with it; None when no one rule maps every name."""
    if len(names) != len(expected):
        return None
    candidates: list[Callable[[str], str]] = [
        lambda name: name,
        lambda name: name[len(GRAD_PREFIX) :] if name.startswith(GRAD_PREFIX) else "\0",
        lambda name: GRAD_PREFIX + name,
    ]
    for relation in candidates:
        if all(map(str.__eq__, map(relation, names), expected)):
            return relation
    return None
