"""ElementwiseUpdate: an optimizer update as one parallel loop over equal-length 1-D arrays
``(param, grad, *state)`` with the per-step scalars as arguments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import numba
from numba import types

from fastoptim.kernels.compiled import CompiledLoop

# new_record(Record, values): the NamedTuple ``Record(*values)`` from its field values in
# order, without the NamedTuple's Python-level __new__ (tuple.__new__ itself, a C call): a step
# makes one scalar record per group, and that __new__ costs more than the rest of the record's
# scalars (270 ns against 90). It checks no length: a test checks every scalar function's.
new_record: Any = tuple.__new__


class KernelPiece(Protocol):
    """What ``run_pieces`` reads of one piece of a step (the optimizer's ``Piece``)."""

    @property
    def group(self) -> int: ...
    @property
    def param(self) -> Any: ...
    @property
    def arrays(self) -> tuple: ...  # (param, grad, *states)


class ElementwiseUpdate(CompiledLoop):
    """The kernel ``f(param, grad, *state, *scalars) -> None`` that ``make_body(loop)`` returns.

    ``scalars`` is the NamedTuple of the scalar arguments, in the kernel's order: its field
    names must be the body's argument names after the arrays (checked here, once). Every
    variant takes param and state as writable 1-D C arrays, grad as a read-only one (which
    writable grads also match) and the scalars in the buffer's dtype.
    """

    def __init__(self, make_body: Callable, n_state: int, scalars: type[NamedTuple]) -> None:
        super().__init__(make_body, self._signature)
        self.n_state = n_state
        self.scalars = scalars
        code = make_body(range).__code__
        arguments = code.co_varnames[: code.co_argcount]
        self.scalar_names = tuple(scalars.__annotations__)
        if arguments[2 + n_state :] != self.scalar_names:
            raise TypeError(
                f"the kernel {code.co_name} takes scalars {arguments[2 + n_state :]}, but its "
                f"record {scalars.__name__} lists {self.scalar_names}: make them agree"
            )

    @property
    def n_scalars(self) -> int:
        return len(self.scalar_names)

    def _signature(self, dtype):
        scalar = numba.from_dtype(dtype)
        writable = types.Array(scalar, 1, "C")
        read_only = types.Array(scalar, 1, "C", readonly=True)
        state = (writable,) * self.n_state
        return types.none(writable, read_only, *state, *(scalar,) * self.n_scalars)

    def run(self, segments: Sequence[Sequence[Any]], values: Sequence[float]) -> None:
        """Call the kernel once per segment ``(param, grad, *state)``.

        ``values`` are the scalar arguments as Python floats, computed in float64. Numba
        unboxes them straight into the variant's scalar type, rounding to nearest as
        ``np.float32(value)`` does, so each segment computes in its own dtype without a numpy
        scalar being made per step. The arrays must already be validated 1-D C-contiguous
        arrays of one dtype per segment: this is the hot path, it checks nothing.
        """
        for segment in segments:
            self.variant_for(segment[0])(*segment, *values)

    def run_pieces(self, pieces: Sequence[KernelPiece], table: Sequence[Sequence[float]]) -> None:
        """``run`` for the pieces of a step, piece ``p`` with the scalars ``table[p.group]``."""
        for piece in pieces:
            self.variant_for(piece.param)(*piece.arrays, *table[piece.group])
