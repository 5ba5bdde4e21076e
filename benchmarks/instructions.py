"""Instructions per element of the Adam kernels' vectorised loops, from their assembly: a
report run by hand (this machine's VM exposes no hardware counters to perf).

    python benchmarks/instructions.py

For each storage (float32, bfloat16 and int8 state) it compiles the serial float32 variant,
finds every loop whose body uses packed (ymm/zmm) instructions, and counts the instructions
of one iteration and the elements it advances (the step of the index it compares). Of the
copies the switches make (weight decay on/off, ...), the shortest is the plain Adam step
(for int8, the shortest that clamps).
int8's step is two loops per block: the update (decode, element, the block's largest value)
and the encoding of the new state.
"""

from __future__ import annotations

import re

import numpy as np

from fastoptim import kernels

LABEL = re.compile(r"^(\.LBB\d+_\d+):")
JUMP = re.compile(r"^\s+j\w+\s+(\.LBB\d+_\d+)")
STEP = re.compile(r"^\s+addq\s+\$(\d+), %(\w+)")
COMPARE = re.compile(r"^\s+cmpq\s+%(\w+), %(\w+)")


def vector_loops(assembly: str) -> list[tuple[int, int, str]]:
    """(instructions, elements per iteration, the body's text) per loop of one basic
    block with packed instructions (the vectorised inner loops)."""
    lines = assembly.splitlines()
    starts = {}
    loops = []
    for number, line in enumerate(lines):
        label = LABEL.match(line)
        if label:
            starts[label.group(1)] = number
        jump = JUMP.match(line)
        if jump and jump.group(1) in starts and starts[jump.group(1)] < number:
            span = lines[starts[jump.group(1)] + 1 : number + 1]
            if any(LABEL.match(x) for x in span):
                continue  # not one basic block: an outer loop
            body = [x for x in span if x.startswith("\t")]
            if not any("ymm" in x or "zmm" in x for x in body):
                continue
            compared = {r for x in body for m in [COMPARE.match(x)] if m for r in m.groups()}
            steps = [
                int(m.group(1))
                for x in body
                for m in [STEP.match(x)]
                if m and m.group(2) in compared
            ]
            if not steps:
                continue
            loops.append((len(body), steps[0], "\n".join(body)))
    return loops


def report(name: str, loop) -> None:
    (assembly,) = loop.variant(np.dtype(np.float32), False).inspect_asm().values()
    loops = vector_loops(assembly)
    # the update divides; int8's runs the clamp (min/max: m_bound is finite but for beta2 = 0)
    updates = [x for x in loops if "vdivps" in x[2] and (name != "int8" or "vminps" in x[2])]
    update = min(updates, key=lambda x: x[0] / x[1])
    line = f"{name:<10} update loop: {update[0]} instructions / {update[1]} elements = {update[0] / update[1]:.2f}"
    encoders = [x for x in loops if "vcvttps2dq" in x[2] and "vdivps" not in x[2]]
    if name == "int8" and encoders:
        encode = min(encoders, key=lambda x: x[0] / x[1])
        total = update[0] / update[1] + encode[0] / encode[1]
        line += (
            f"; encode loop: {encode[0]} / {encode[1]} = {encode[0] / encode[1]:.2f}; "
            f"per element {total:.2f}"
        )
    print(line)


def main() -> None:
    update = kernels.adam_update
    for name, loop in (
        ("float32", update),
        ("bfloat16", update.stored_as("bfloat16")),
        ("int8", update.stored_as("int8")),
    ):
        report(name, loop)


if __name__ == "__main__":
    main()
