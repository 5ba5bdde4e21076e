"""ElementwiseUpdate: an optimizer update as one parallel loop over equal-length 1-D arrays
``(param, grad, *state)`` with the per-step scalars as arguments, in each way of storing
the state.

An algorithm writes only its element function, ``element(p, g, *states, *scalars) -> (p,
*states)``: the new parameter and state values of one element (Numba, inlined). The loops
around it are made here, one per storage:

- ``float``: the state in the parameters' dtype, read and written as it is;
- ``bfloat16``: float32 parameters, the state as bfloat16 bit patterns in uint16, decoded
  on load and stochastically rounded on store (kernels/bfloat16.py). The loop walks chunks
  of ``CHUNK`` elements in parallel, each in 32-bit lanes with its random bits carried as a
  Weyl sequence (one add per element).
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import numba
import numpy as np
from numba import types

from fastoptim.kernels import bfloat16
from fastoptim.kernels.compiled import CompiledLoop

# new_record(Record, values): the NamedTuple ``Record(*values)`` from its field values in
# order, without the NamedTuple's Python-level __new__ (tuple.__new__ itself, a C call): a step
# makes one scalar record per group, and that __new__ costs more than the rest of the record's
# scalars (270 ns against 90). It checks no length: a test checks every scalar function's.
new_record: Any = tuple.__new__

CHUNK = 4096  # elements per parallel chunk of the bfloat16 loop
STORAGES = ("float", "bfloat16")


class KernelPiece(Protocol):
    """What ``run_pieces`` reads of one piece of a step (the optimizer's ``Piece``)."""

    @property
    def group(self) -> int: ...
    @property
    def param(self) -> Any: ...
    @property
    def arrays(self) -> tuple: ...  # (param, grad, *states[, offset])


# The loops, as source: a loop is made per algorithm from its element function, so that
# each is one flat function LLVM vectorises (a loop over a generic element call would not
# know the number of states). ``{...}`` are filled in by _loop_source. The inner loop is
# written once per setting of the switches (see _switched).
_FLOAT_LOOP = """
def {name}(param, grad, {states}{scalars}):
    zero = param.dtype.type(0)
{present}
{inner}
"""
_FLOAT_INNER = """
    for i in loop(param.size):
        p, {new} = element(param[i], grad[i], {loads}{scalars})
{stores}
        param[i] = p"""
_BFLOAT16_LOOP = """
def {name}(param, grad, {states}offset, {scalars}{keys}):
    zero = np.float32(0)
{present}
    n = param.size
    for chunk in loop((n + CHUNK - 1) // CHUNK):
        start = chunk * CHUNK
        stop = min(start + CHUNK, n)
        param_c = param[start:stop]
        grad_c = grad[start:stop]
{slices}
{streams}
{inner}
"""
_BFLOAT16_INNER = """
    for i in range(param_c.size):
        p, {new} = element(param_c[i], grad_c[i], {loads}{scalars})
{stores}
        param_c[i] = p
{advance}"""


def _loop_source(
    storage: str,
    name: str,
    n_state: int,
    optional: Mapping[int, str],
    scalars: Sequence[str],
    switches: Mapping[str, float],
) -> str:
    """The source of the ``storage`` loop of an element function with ``n_state`` states:
    ``optional`` maps the states that may be absent to their gate scalar (a state is
    read and written only while its gate is not 0 and its buffer not a zero-length
    place-holder); ``switches`` maps scalars to the value that turns their option off."""
    states = [f"s{k}" for k in range(n_state)]
    present = "\n".join(
        f"    has{k} = s{k}.size != 0 and {gate} != 0.0" for k, gate in sorted(optional.items())
    )
    new = ", ".join(f"n{k}" for k in range(n_state)) + ("," if n_state == 1 else "")
    common = {
        "name": name,
        "states": "".join(x + ", " for x in states),
        "scalars": "".join(x + ", " for x in scalars),
        "present": present,
    }
    if storage == "float":
        loads = [f"s{k}[i]" for k in range(n_state)]
        stores = [f"s{k}[i] = n{k}" for k in range(n_state)]
        inner = _switched(
            _FLOAT_INNER, 8, "param.dtype.type", switches, optional, scalars, loads, stores, new, ""
        )
        return _FLOAT_LOOP.format(inner=inner, **common)
    streams = -(-n_state // bfloat16.STATES_PER_STREAM)
    loads = [f"decode(s{k}_c[i])" for k in range(n_state)]
    stores = [
        f"s{k}_c[i] = encode(n{k}, " + (f"r{k // 2})" if k % 2 == 0 else f"high16(r{k // 2}))")
        for k in range(n_state)
    ]
    advance = "\n".join(
        f"        r{j} = weyl(r{j}, 1, {bfloat16.stream_step(j)})" for j in range(streams)
    )
    inner = _switched(
        _BFLOAT16_INNER, 8, "np.float32", switches, optional, scalars, loads, stores, new, advance
    )
    return _BFLOAT16_LOOP.format(
        inner=textwrap.indent(inner, "    "),  # inside the chunk loop
        keys=", ".join(f"key{j}" for j in range(streams)),
        slices="\n".join(f"        s{k}_c = s{k}[start:stop]" for k in range(n_state)),
        streams="\n".join(
            f"        r{j} = weyl(key{j}, offset + start, {bfloat16.stream_step(j)})"
            for j in range(streams)
        ),
        **common,
    )


def _switched(
    template: str,
    indent: int,
    literal: str,
    switches: Mapping[str, float],
    optional: Mapping[int, str],
    scalars: Sequence[str],
    loads: Sequence[str],
    stores: Sequence[str],
    new: str,
    advance: str,
) -> str:
    """The inner loop ``template`` once per setting of the switches, chosen by
    ``if``/``elif`` before the loop. In each copy an off switch is passed as its value
    (``literal(value)``, the kernel's scalar type: a float64 one would widen the element's
    arithmetic), so Numba folds the option's branch away instead of testing it on every
    element: LLVM does not unswitch such loops, and a state read or written under a
    branch stops it vectorising at all. A state whose gate is off is neither read nor
    written; the gate is on while ``has{k}`` (gate not 0, buffer not a place-holder)."""
    gates = {gate: k for k, gate in optional.items()}
    names = list(dict.fromkeys([*gates, *switches]))
    off_value = {name: float(switches.get(name, 0.0)) for name in names}
    branches: list[str] = []
    for setting in itertools.product((True, False), repeat=len(names)):
        on = dict(zip(names, setting, strict=True))
        arguments = [
            name if on.get(name, True) else f"{literal}({off_value[name]!r})" for name in scalars
        ]
        kept = [k for k in range(len(loads)) if k not in optional or on[optional[k]]]
        body = template.format(
            new=new,
            loads="".join((loads[k] if k in kept else "zero") + ", " for k in range(len(loads))),
            scalars="".join(x + ", " for x in arguments),
            stores="\n".join(" " * indent + stores[k] for k in kept),
            advance=advance,
        )
        if not names:
            return body
        condition = " and ".join(
            (f"has{gates[name]}" if value else f"not has{gates[name]}")
            if name in gates
            else f"{name} {'!=' if value else '=='} {off_value[name]!r}"
            for name, value in on.items()
        )
        keyword = "if" if not branches else "elif"
        branches.append(f"    {keyword} {condition}:" + textwrap.indent(body, "    "))
    return "\n".join(branches)


def _make_body(
    storage: str, element: Callable, name: str, n_state: int, optional, scalars, switches
):
    """``make_body(loop)`` for CompiledLoop: the loop compiled from its source.

    Numba's on-disk cache keys a function by its file, qualified name and closure: the
    loop is made inside a factory so that ``loop`` (range or prange) and ``element`` are
    closure cells (the serial and parallel variants get different entries), the code is
    attributed to this file (whose timestamp the cache checks), and the name carries a
    hash of the element function's source (editing it makes a new entry, not a stale one).
    """
    loop_source = _loop_source(storage, name, n_state, optional, scalars, switches)
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
            "decode": bfloat16.decode,
            "encode": bfloat16.encode,
            "weyl": bfloat16.weyl,
            "high16": bfloat16.high16,
        }
        exec(compile(factory, __file__, "exec"), namespace)
        return namespace["make"](element, loop)

    make_body.source = loop_source  # type: ignore[attr-defined]
    return make_body


class UpdateLoop(CompiledLoop):
    """One storage's compiled loop of an ElementwiseUpdate."""

    def __init__(self, make_body: Callable, signature: Callable, n_state: int, storage: str):
        super().__init__(make_body, signature)
        self.n_state = n_state
        self.storage = storage

    @property
    def n_random_streams(self) -> int:
        """How many 32-bit random streams (keys after the scalars) the loop takes: two
        states per stream when the state is rounded stochastically, else none."""
        if self.storage == "float":
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

    def run_pieces(self, pieces: Sequence[KernelPiece], table: Sequence[Sequence[float]]) -> None:
        """``run`` for the pieces of a step, piece ``p`` with the scalars ``table[p.group]``."""
        for piece in pieces:
            self.variant_for(piece.param)(*piece.arrays, *table[piece.group])


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
        self.optional = dict(optional or {})
        # an optional state's gate is a switch too (off at 0)
        self.switches = {**{gate: 0.0 for gate in self.optional.values()}, **(switches or {})}
        unknown = set(self.switches) - set(self.scalar_names)
        if unknown:
            raise TypeError(f"{self.name}: switches or gates {unknown} are not its scalars")
        make_body = _make_body(
            "float", element, self.name, n_state, self.optional, self.scalar_names, {}
        )
        super().__init__(make_body, self._signature, n_state, "float")
        self._stored: dict[str, UpdateLoop] = {"float": self}

    @property
    def n_scalars(self) -> int:
        return len(self.scalar_names)

    def stored_as(self, storage: str) -> UpdateLoop:
        """The loop for state stored as ``storage`` (one of ``STORAGES``)."""
        loop = self._stored.get(storage)
        if loop is None:
            if storage != "bfloat16":
                raise ValueError(f"no {storage!r} loop; the storages are {list(STORAGES)}")
            make_body = _make_body(
                storage,
                self.element,
                f"{self.name}_{storage}",
                self.n_state,
                self.optional,
                self.scalar_names,
                self.switches,
            )
            loop = UpdateLoop(make_body, self._bfloat16_signature, self.n_state, storage)
            self._stored[storage] = loop
        return loop

    def _signature(self, dtype):
        scalar = numba.from_dtype(dtype)
        writable = types.Array(scalar, 1, "C")
        read_only = types.Array(scalar, 1, "C", readonly=True)
        state = (writable,) * self.n_state
        return types.none(writable, read_only, *state, *(scalar,) * self.n_scalars)

    def _bfloat16_signature(self, dtype):
        if dtype != np.float32:
            raise TypeError(f"bfloat16 state needs float32 parameters, not {dtype}")
        writable = types.Array(types.float32, 1, "C")
        read_only = types.Array(types.float32, 1, "C", readonly=True)
        state = (types.Array(types.uint16, 1, "C"),) * self.n_state
        scalars = (types.float32,) * self.n_scalars
        keys = (types.uint32,) * self.stored_as("bfloat16").n_random_streams
        return types.none(writable, read_only, *state, types.int64, *scalars, *keys)
