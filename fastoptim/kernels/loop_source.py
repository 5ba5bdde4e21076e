"""The source of an element function's loops, one per storage of the state.

A loop is written out per algorithm (then compiled by kernels/elementwise.py) so that each
is one flat function LLVM vectorises: a loop over a generic element call would not know the
number of states. ``{...}`` in the templates are filled in here. The inner loop is written
once per setting of the switches (see ``_switched``).

- ``float``: the state in the parameters' dtype, read and written as it is;
- ``bfloat16``: chunks of ``CHUNK`` elements in parallel, the state decoded on load and
  stochastically rounded on store, the random bits carried as a Weyl sequence;
- ``int8``: chunks of ``BLOCKS_PER_CHUNK`` quantization blocks in parallel. Per block, one
  sweep decodes the old state, updates, writes the parameters and keeps the new state in a
  scratch array of one block (in L1) while it finds the block's new scale; a second sweep
  over that scratch encodes the codes. One pass over memory; except on AMD's Zen cores,
  before each block the loop asks the CPU for the data ``PREFETCH_AHEAD`` elements on (see that
  constant). The scratch is allocated once per chunk (64 blocks, 16,384 elements): one
  preallocated row per thread, indexed by the thread id, was measured slower (Adam at 1e8:
  0.58x float32 state against 0.77x; likely, LLVM cannot tell such a view from the arrays it
  updates, while a fresh allocation it can).
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Collection, Mapping, Sequence

from llvmlite import binding

from fastoptim.kernels import bfloat16

CHUNK = 4096  # elements per parallel chunk of the bfloat16 loop
BLOCKS_PER_CHUNK = 64  # quantization blocks per parallel chunk of the int8 loop
# Except on AMD's Zen cores, the int8 loop asks for PREFETCH_SPAN elements (at most a block)
# PREFETCH_AHEAD elements past each block before it works on the block: its arithmetic took
# about as long as its memory traffic, and without the hint the two did not overlap (Adam at
# 1e8, blocks of 256, an Emerald Rapids: 0.87x float32 state's step, 1.1x with it; 768 beat
# 256, 2048 and 4096; asking for a whole block of 4096 at once was slower than not asking).
# On AMD's Zen cores the hardware prefetchers keep up without it and the hints only cost
# instructions (a Zen 5, Adam at 1e8 in alternating runs: 1.61-1.65x float32 state without
# them, 1.15-1.57x with them; in cache 0.16-0.18 ns per element against 0.20-0.22)
PREFETCH_AHEAD = 768
PREFETCH_SPAN = 0 if binding.get_host_cpu_name().startswith("znver") else 256
STORAGES = ("float", "bfloat16", "int8")

_FLOAT_LOOP = """
def {name}(param, grad, {states}{ema}{acc}{scalars}{ema_scalars}):
    zero = param.dtype.type(0)
{present}
{inner}
"""
_FLOAT_INNER = """
    for i in loop(param.size):
        p, {new} = element(param[i], {grad}, {loads}{scalars})
{stores}
        param[i] = p{ema_store}"""
_BFLOAT16_LOOP = """
def {name}(param, grad, {states}{ema}{acc}offset, {scalars}{ema_scalars}{keys}):
    zero = np.float32(0)
{present}
    n = param.size
    for chunk in loop((n + CHUNK - 1) // CHUNK):
        start = chunk * CHUNK
        stop = min(start + CHUNK, n)
        param_c = param[start:stop]
        grad_c = grad[start:stop]{ema_slice}{acc_slice}
{slices}
{streams}
{inner}
"""
_BFLOAT16_INNER = """
        for i in range(param_c.size):
            p, {new} = element(param_c[i], {grad}, {loads}{scalars})
{stores}
            param_c[i] = p{ema_store}
{advance}"""
_INT8_LOOP = """
def {name}(param, grad, {states}{ema}{acc}{scales}bounds, block, {scalars}{ema_scalars}):
    zero = np.float32(0)
{present}
    n_blocks = bounds.size - 1
    for chunk in loop((n_blocks + BLOCKS_PER_CHUNK - 1) // BLOCKS_PER_CHUNK):
{scratch}
        for b in range(chunk * BLOCKS_PER_CHUNK, min((chunk + 1) * BLOCKS_PER_CHUNK, n_blocks)):
            start = bounds[b]
            stop = bounds[b + 1]
            param_b = param[start:stop]
            grad_b = grad[start:stop]{ema_slice}{acc_slice}
{prefetch}
{inner}
"""
_INT8_INNER = """
{prologue}
            for i in range(param_b.size):
                p, {new} = element(param_b[i], {grad}, {loads}{scalars})
                param_b[i] = p{ema_store}
{keep}
{rescale}
            for i in range(param_b.size):
{encode}"""


def loop_source(
    storage: str,
    name: str,
    n_state: int,
    scalars: Sequence[str],
    optional: Mapping[int, str],
    switches: Mapping[str, float],
    unsigned: Collection[int] = (),
    int8_only: Mapping[str, float] | None = None,
    ema: bool = False,
    accumulate: bool = False,
) -> str:
    """The source of the ``storage`` loop of an element function with ``n_state`` states.

    ``optional`` maps the states that may be absent to their gate scalar (a state is read
    and written only while its gate is not 0 and its buffer not a zero-length
    place-holder); ``switches`` maps scalars to the value that turns their option off (the
    float loop switches on the gates alone); ``unsigned`` are the states that are never
    negative (int8 stores them with the unsigned map); ``int8_only`` maps the scalars only
    the int8 loop uses to the value that stands for them in the others. With ``ema``, the
    loop takes the buffer ``ema`` after the states and ``ema_weight, ema_complement`` after
    the scalars, and moves each element's average towards its new parameter
    (``lerp(ema, p, ema_weight)``) in the same pass. With ``accumulate``, it takes the
    buffer ``acc`` after that and each element's gradient is ``grad + acc`` (the last
    gradient of an accumulation and the sum of the others)."""
    fixed = {} if storage == "int8" else dict(int8_only or {})
    states = [f"s{k}" for k in range(n_state)]
    piece = {"float": "", "bfloat16": "_c", "int8": "_b"}.get(storage, "")
    depth = {"float": 8, "bfloat16": 12, "int8": 16}.get(storage, 8)
    common = {
        "name": name,
        "states": "".join(x + ", " for x in states),
        "ema": "ema, " if ema else "",
        "ema_scalars": "ema_weight, ema_complement, " if ema else "",
        "ema_slice": f"\n{' ' * (depth - 4)}ema{piece} = ema[start:stop]" if ema and piece else "",
        "ema_store": (
            f"\n{' ' * depth}ema{piece}[i] = lerp(ema{piece}[i], p, ema_weight, ema_complement)"
            if ema
            else ""
        ),
        "acc": "acc, " if accumulate else "",
        "acc_slice": f"\n{' ' * (depth - 4)}acc{piece} = acc[start:stop]"
        if accumulate and piece
        else "",
        "grad": f"grad{piece}[i] + acc{piece}[i]" if accumulate else f"grad{piece}[i]",
        "scalars": "".join(x + ", " for x in scalars),
        "present": "\n".join(
            f"    has{k} = s{k}.size != 0 and {gate} != 0.0" for k, gate in sorted(optional.items())
        ),
    }
    new = ", ".join(f"n{k}" for k in range(n_state)) + ("," if n_state == 1 else "")
    if storage == "float":
        loads = [f"s{k}[i]" for k in range(n_state)]

        def float_body(kept: list[int], arguments: str) -> str:
            return _FLOAT_INNER.format(
                new=new,
                loads=_loads(loads, kept),
                scalars=arguments,
                stores="\n".join(f"        s{k}[i] = n{k}" for k in kept),
                ema_store=common["ema_store"],
                grad=common["grad"],
            )

        inner = _switched(float_body, 4, n_state, "param.dtype.type", {}, optional, scalars, fixed)
        return _FLOAT_LOOP.format(inner=inner, **common)
    if storage == "bfloat16":
        return _bfloat16_source(common, new, n_state, scalars, optional, switches, fixed)
    if storage == "int8":
        # its own scalars are switches too: a branch on one inside the loop is tested on
        # every element, one around the loop lets LLVM fold the inner test
        int8_switches = {**switches, **(int8_only or {})}
        return _int8_source(common, new, n_state, scalars, optional, int8_switches, set(unsigned))
    raise ValueError(f"no {storage!r} loop; the storages are {list(STORAGES)}")


def _bfloat16_source(common, new, n_state, scalars, optional, switches, fixed) -> str:
    streams = -(-n_state // bfloat16.STATES_PER_STREAM)
    loads = [f"decode(s{k}_c[i])" for k in range(n_state)]
    advance = "\n".join(
        f"            r{j} = weyl(r{j}, 1, {bfloat16.stream_step(j)})" for j in range(streams)
    )

    def body(kept: list[int], arguments: str) -> str:
        stores = [
            f"            s{k}_c[i] = encode(n{k}, "
            + (f"r{k // 2})" if k % 2 == 0 else f"high16(r{k // 2}))")
            for k in kept
        ]
        return _BFLOAT16_INNER.format(
            new=new,
            loads=_loads(loads, kept),
            scalars=arguments,
            stores="\n".join(stores),
            advance=advance,
            ema_store=common["ema_store"],
            grad=common["grad"],
        )

    return _BFLOAT16_LOOP.format(
        inner=_switched(body, 8, n_state, "np.float32", switches, optional, scalars, fixed),
        keys=", ".join(f"key{j}" for j in range(streams)),
        slices="\n".join(f"        s{k}_c = s{k}[start:stop]" for k in range(n_state)),
        streams="\n".join(
            f"        r{j} = weyl(key{j}, offset + start, {bfloat16.stream_step(j)})"
            for j in range(streams)
        ),
        **common,
    )


def _int8_source(common, new, n_state, scalars, optional, switches, unsigned) -> str:
    kind = ["unsigned" if k in unsigned else "signed" for k in range(n_state)]
    levels = ["UNSIGNED_LEVELS" if k in unsigned else "SIGNED_LEVELS" for k in range(n_state)]
    loads = [f"decode_{kind[k]}(s{k}_b[i], step{k})" for k in range(n_state)]
    pad = " " * 12

    def body(kept: list[int], arguments: str) -> str:
        prologue, keep, rescale, encode = [], [], [], []
        for k in kept:
            prologue += [
                f"{pad}s{k}_b = s{k}[start:stop]",
                f"{pad}step{k} = scale{k}[b] * np.float32(1.0 / ({levels[k]} * {levels[k]}))",
                f"{pad}top{k} = np.int32(0)",
            ]
            kept_value = f"np.sqrt(n{k})" if k in unsigned else f"n{k}"  # the map's argument
            keep += [
                f"{pad}    kept{k} = {kept_value}",
                f"{pad}    new{k}[i] = kept{k}",
                f"{pad}    top{k} = larger_bits(top{k}, magnitude_bits(kept{k}))",
            ]
            largest = f"from_bits(top{k})"
            rescale += [
                f"{pad}largest{k} = {largest}",
                f"{pad}scale{k}[b] = largest{k}"
                + (f" * largest{k}" if k in unsigned else ""),  # a root: the scale is its square
                f"{pad}inverse{k} = {kind[k]}_inverse(largest{k})",
            ]
            encode.append(f"{pad}    s{k}_b[i] = encode_{kind[k]}(new{k}[i], inverse{k})")
        return _INT8_INNER.format(
            prologue="\n".join(prologue),
            new=new,
            loads=_loads(loads, kept),
            scalars=arguments,
            keep="\n".join(keep),
            rescale="\n".join(rescale),
            encode="\n".join(encode) or f"{pad}    pass",
            ema_store=common["ema_store"],
            grad=common["grad"],
        )

    return _INT8_LOOP.format(
        prefetch=_prefetch_source(n_state),
        inner=_switched(body, 12, n_state, "np.float32", switches, optional, scalars, {}),
        scales="".join(f"scale{k}, " for k in range(n_state)),
        scratch="\n".join(
            f"        new{k} = np.empty(block, dtype=np.float32)" for k in range(n_state)
        ),
        **common,
    )


def _prefetch_source(n_state: int) -> str:
    """The int8 loop's hints for the data ``PREFETCH_AHEAD`` elements past a block (none
    where ``PREFETCH_SPAN`` is 0)."""
    if not PREFETCH_SPAN:
        return ""
    span = f"range(ahead, ahead + min(stop - start, {PREFETCH_SPAN}), "
    lines = [
        f"            ahead = stop + {PREFETCH_AHEAD}",
        f"            for j in {span}16):  # 64-byte lines of float32",
        "                prefetch(param, j)",
        "                prefetch(grad, j)",
    ]
    for k in range(n_state):
        lines += [f"            for j in {span}64):", f"                prefetch(s{k}, j)"]
    return "\n".join(lines)


def _loads(loads: Sequence[str], kept: Collection[int]) -> str:
    """The element's state arguments: a load where the state is kept, else ``zero``."""
    return "".join((load if k in kept else "zero") + ", " for k, load in enumerate(loads))


def _switched(
    body: Callable[[list[int], str], str],
    indent: int,
    n_state: int,
    literal: str,
    switches: Mapping[str, float],
    optional: Mapping[int, str],
    scalars: Sequence[str],
    fixed: Mapping[str, float],
) -> str:
    """The inner loop ``body(kept states, scalar arguments)`` (written at depth ``indent``)
    once per setting of the switches, chosen by ``if``/``elif`` before the loop. In each copy an off switch is
    passed as its value (``literal(value)``, the kernel's scalar type: a float64 one would
    widen the element's arithmetic), so Numba folds the option's branch away instead of
    testing it on every element: LLVM does not unswitch such loops, and a state read or
    written under a branch stops it vectorising at all. A state whose gate is off is
    neither read nor written; the gate is on while ``has{k}`` (gate not 0, buffer not a
    place-holder). A ``fixed`` scalar is always its value (an option this loop lacks)."""
    gates = {gate: k for k, gate in optional.items()}
    names = list(dict.fromkeys([*gates, *switches]))
    off_value = {name: float(switches.get(name, 0.0)) for name in names}
    off_value.update(fixed)
    branches: list[str] = []
    for setting in itertools.product((True, False), repeat=len(names)):
        on = dict(zip(names, setting, strict=True))
        on.update({name: False for name in fixed})
        arguments = [
            name if on.get(name, True) else f"{literal}({_number(off_value[name])})"
            for name in scalars
        ]
        kept = [k for k in range(n_state) if k not in optional or on[optional[k]]]
        text = body(kept, "".join(x + ", " for x in arguments))
        if not names:
            return text
        condition = " and ".join(
            (f"has{gates[name]}" if value else f"not has{gates[name]}")
            if name in gates
            else f"{name} {'!=' if value else '=='} {_number(off_value[name])}"
            for name, value in on.items()
            if name not in fixed
        )
        keyword = "if" if not branches else "elif"
        branches.append(f"{' ' * indent}{keyword} {condition}:" + textwrap.indent(text, "    "))
    return "\n".join(branches)


def _number(value: float) -> str:
    """A float as source (``np.inf`` for infinity, which has no literal)."""
    if value == float("inf"):
        return "np.inf"
    return repr(value)
