"""ElementwiseUpdate: an optimizer update as one parallel loop over equal-length 1-D arrays
``(param, grad, *state)`` with the per-step scalars as arguments, in each way of storing
the state.

An algorithm writes only its element function, ``element(p, g, *states, *scalars) -> (p,
*states)``: the new parameter and state values of one element (Numba, inlined). The loops
around it are made from source here (kernels/loop_source.py), one per storage:

- ``float``: the state in the parameters' dtype, read and written as it is;
- ``bfloat16``: float32 parameters, the state as bfloat16 bit patterns in uint16, decoded
  on load and stochastically rounded on store (kernels/bfloat16.py);
- ``int8``: float32 parameters, the state as 8-bit codes with one float32 scale per block
  (kernels/int8.py).
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

import numba
import numpy as np
from numba import types

from fastoptim.kernels import bfloat16, int8
from fastoptim.kernels.compiled import CompiledLoop
from fastoptim.kernels.interpolation import lerp
from fastoptim.kernels.loop_source import BLOCKS_PER_CHUNK, CHUNK, STORAGES, loop_source
from fastoptim.kernels.prefetch import prefetch

# new_record(Record, values): the NamedTuple ``Record(*values)`` from its field values in
# order, without the NamedTuple's Python-level __new__ (tuple.__new__ itself, a C call): a step
# makes one scalar record per group, and that __new__ costs more than the rest of the record's
# scalars (270 ns against 90). It checks no length: a test checks every scalar function's.
new_record: Any = tuple.__new__


def _make_body(loop_source: str, element: Callable, name: str):
    """``make_body(loop)`` for CompiledLoop: the loop compiled from its source.

    Numba's on-disk cache keys a function by its file, qualified name and closure: the
    loop is made inside a factory so that ``loop`` (range or prange) and ``element`` are
    closure cells (the serial and parallel variants get different entries), the code is
    attributed to this file (whose timestamp the cache checks), and the name carries a
    hash of the element function's source (editing it makes a new entry, not a stale one).
    """
    element_source = inspect.getsource(element.py_func)  # type: ignore[attr-defined]
    digest = hashlib.sha256((loop_source + element_source).encode()).hexdigest()[:12]
    unique = f"{name}_{digest}"
    factory = (
        "def make(element, loop):\n"
        + textwrap.indent(loop_source.replace(f"def {name}(", f"def {unique}("), "    ")
        + f"\n    return {unique}\n"
    )

    def make_body(loop):
        namespace = {
            "__name__": __name__,
            "np": np,
            "CHUNK": CHUNK,
            "BLOCKS_PER_CHUNK": BLOCKS_PER_CHUNK,
            "decode": bfloat16.decode,
            "encode": bfloat16.encode,
            "weyl": bfloat16.weyl,
            "high16": bfloat16.high16,
            **{name: getattr(int8, name) for name in _INT8_NAMES},
            "lerp": lerp,
            "prefetch": prefetch,
        }
        exec(compile(factory, __file__, "exec"), namespace)
        return namespace["make"](element, loop)

    make_body.source = loop_source  # type: ignore[attr-defined]
    return make_body


_INT8_NAMES = (
    "SIGNED_LEVELS",
    "UNSIGNED_LEVELS",
    "decode_signed",
    "decode_unsigned",
    "encode_signed",
    "encode_unsigned",
    "signed_inverse",
    "unsigned_inverse",
    "magnitude_bits",
    "larger_bits",
    "from_bits",
)


class UpdateLoop(CompiledLoop):
    """One storage's compiled loop of an ElementwiseUpdate."""

    def __init__(
        self,
        make_body: Callable,
        signature: Callable,
        n_state: int,
        storage: str,
        unsigned: frozenset[int] = frozenset(),
        ema: bool = False,
        accumulate: bool = False,
    ):
        super().__init__(make_body, signature)
        self.n_state = n_state
        self.storage = storage
        self.unsigned = unsigned  # the states never negative (int8 codes them as uint8)
        # the loop also moves a weight average: ``ema`` after the states, its two scalars
        # after the algorithm's
        self.ema = ema
        # the loop adds an accumulation buffer ``acc`` (after the average) to the gradient
        self.accumulate = accumulate

    @property
    def n_random_streams(self) -> int:
        """How many 32-bit random streams (keys after the scalars) the loop takes: two
        states per stream when the state is rounded stochastically (bfloat16), else none."""
        if self.storage != "bfloat16":
            return 0
        return -(-self.n_state // bfloat16.STATES_PER_STREAM)

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


class ElementwiseUpdate(UpdateLoop):
    """The update of an element function, as a loop over whole arrays: itself the loop
    over state in the parameters' dtype, ``stored_as(storage)`` the loop of a storage.

    ``element(p, g, *states, *scalars) -> (p, *states)``; ``scalars`` is the NamedTuple of
    its scalar arguments in order (its field names must be the element function's argument
    names after the states: checked here, once). ``optional`` maps the states an option may
    leave out to the scalar that says whether it is used: while that scalar is 0 (or the
    buffer is a zero-length place-holder) the loop passes 0 and writes nothing. Every variant takes param and state as writable 1-D C arrays, grad as a
    read-only one (which writable grads also match) and the scalars in the parameters' dtype.
    """

    def __init__(
        self,
        element: Callable,
        n_state: int,
        scalars: type[NamedTuple],
        optional: Mapping[int, str] | None = None,
        switches: Mapping[str, float] | None = None,
        unsigned: Collection[int] = (),
        int8_only: Mapping[str, float] | None = None,
    ) -> None:
        code = element.py_func.__code__  # type: ignore[attr-defined]  # a Numba dispatcher
        arguments = code.co_varnames[: code.co_argcount]
        self.scalars = scalars
        self.scalar_names = tuple(scalars.__annotations__)
        if arguments[2 + n_state :] != self.scalar_names:
            raise TypeError(
                f"the element function {code.co_name} takes scalars {arguments[2 + n_state :]},"
                f" but its record {scalars.__name__} lists {self.scalar_names}: make them agree"
            )
        self.element = element
        self.name = code.co_name
        self.n_state = n_state
        self.optional = dict(optional or {})
        # an optional state's gate is a switch too (off at 0)
        self.switches = {**{gate: 0.0 for gate in self.optional.values()}, **(switches or {})}
        self.unsigned = frozenset(unsigned)  # states never negative (int8's unsigned map)
        self.int8_only = dict(int8_only or {})
        unknown = (set(self.switches) | set(self.int8_only)) - set(self.scalar_names)
        if unknown:
            raise TypeError(f"{self.name}: switches or gates {unknown} are not its scalars")
        super().__init__(
            self._body("float", False, False),
            self._signature(False, False),
            n_state,
            "float",
            self.unsigned,
        )
        self._stored: dict[tuple[str, bool, bool], UpdateLoop] = {("float", False, False): self}

    @property
    def n_scalars(self) -> int:
        return len(self.scalar_names)

    def stored_as(self, storage: str, ema: bool = False, accumulate: bool = False) -> UpdateLoop:
        """The loop for state stored as ``storage`` (one of ``STORAGES``); with ``ema``,
        the loop that also moves a weight average, with ``accumulate`` the one that adds
        an accumulation buffer to the gradient (see ``loop_source``)."""
        loop = self._stored.get((storage, ema, accumulate))
        if loop is None:
            signatures = {
                "float": self._signature,
                "bfloat16": self._bfloat16_signature,
                "int8": self._int8_signature,
            }
            if storage not in signatures:
                raise ValueError(f"no {storage!r} loop; the storages are {list(STORAGES)}")
            loop = UpdateLoop(
                self._body(storage, ema, accumulate),
                signatures[storage](ema, accumulate),
                self.n_state,
                storage,
                self.unsigned,
                ema,
                accumulate,
            )
            self._stored[storage, ema, accumulate] = loop
        return loop

    def _body(self, storage: str, ema: bool, accumulate: bool) -> Callable:
        name = self.name if storage == "float" else f"{self.name}_{storage}"
        name += ("_ema" if ema else "") + ("_accumulating" if accumulate else "")
        source = loop_source(
            storage,
            name,
            self.n_state,
            self.scalar_names,
            self.optional,
            self.switches,
            self.unsigned,
            self.int8_only,
            ema,
            accumulate,
        )
        return _make_body(source, self.element, name)

    def _signature(self, ema: bool, accumulate: bool) -> Callable:
        def signature(dtype):
            scalar = numba.from_dtype(dtype)
            writable = types.Array(scalar, 1, "C")
            read_only = types.Array(scalar, 1, "C", readonly=True)
            state = (writable,) * self.n_state
            average, average_scalars = _ema_arguments(ema, scalar)
            acc = (read_only,) * accumulate
            return types.none(
                writable, read_only, *state, *average, *acc, *(scalar,) * self.n_scalars,
                *average_scalars,
            )  # fmt: skip

        return signature

    def _bfloat16_signature(self, ema: bool, accumulate: bool) -> Callable:
        def signature(dtype):
            if dtype != np.float32:
                raise TypeError(f"bfloat16 state needs float32 parameters, not {dtype}")
            writable = types.Array(types.float32, 1, "C")
            read_only = types.Array(types.float32, 1, "C", readonly=True)
            state = (types.Array(types.uint16, 1, "C"),) * self.n_state
            scalars = (types.float32,) * self.n_scalars
            keys = (types.uint32,) * self.stored_as("bfloat16").n_random_streams
            average, average_scalars = _ema_arguments(ema, types.float32)
            acc = (read_only,) * accumulate
            return types.none(
                writable, read_only, *state, *average, *acc, types.int64, *scalars,
                *average_scalars, *keys,
            )  # fmt: skip

        return signature

    def _int8_signature(self, ema: bool, accumulate: bool) -> Callable:
        """(param, grad, *codes, [ema,] [acc,] *scales, bounds, block, *scalars[, ema
        scalars]):
        the codes int8 for a signed state and uint8 for an unsigned one, one float32 scale
        per block, the blocks' int64 bounds and the longest block's length."""

        def signature(dtype):
            if dtype != np.float32:
                raise TypeError(f"int8 state needs float32 parameters, not {dtype}")
            writable = types.Array(types.float32, 1, "C")
            read_only = types.Array(types.float32, 1, "C", readonly=True)
            codes = tuple(
                types.Array(types.uint8 if k in self.unsigned else types.int8, 1, "C")
                for k in range(self.n_state)
            )
            scales = (writable,) * self.n_state
            bounds = types.Array(types.int64, 1, "C", readonly=True)
            scalars = (types.float32,) * self.n_scalars
            average, average_scalars = _ema_arguments(ema, types.float32)
            acc = (read_only,) * accumulate
            return types.none(
                writable, read_only, *codes, *average, *acc, *scales, bounds, types.int64,
                *scalars, *average_scalars,
            )  # fmt: skip

        return signature


def _ema_arguments(ema: bool, scalar: Any) -> tuple[tuple, tuple]:
    """The weight average's array and its two scalars in a loop's signature (none
    without ``ema``)."""
    if not ema:
        return (), ()
    return (types.Array(scalar, 1, "C"),), (scalar, scalar)
