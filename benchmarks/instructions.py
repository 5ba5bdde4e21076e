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

It also counts the square roots and divisions per element (they share one unit, whose
throughput does not grow with the vector width) and times each alone on data in L1, which
gives the floor they put under a step. ``--width 512`` asks for 512-bit vectors where LLVM
prefers 256 on the host (NUMBA_CPU_FEATURES with ``-prefer-256-bit``, set before numba is
imported); each line says which width the loop got (Intel's AVX-512 cores get 256 by default,
AMD's Zen 4 and 5 get 512).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

if "--width" in sys.argv and sys.argv[sys.argv.index("--width") + 1] == "512":
    import llvmlite.binding as llvm

    os.environ["NUMBA_CPU_FEATURES"] = llvm.get_host_cpu_features().flatten() + ",-prefer-256-bit"

import numba
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


def divider_ops(body: str) -> int:
    """The elements of the square roots and divisions of a loop body (8 per ymm
    instruction, 16 per zmm)."""
    ops = [x for x in body.splitlines() if x.split()[0] in ("vsqrtps", "vdivps")]
    return sum(16 if "zmm" in x else 8 for x in ops)


@numba.njit(error_model="numpy")
def _roots(out, values, others, repeats):
    for _ in range(repeats):
        for i in range(out.size):
            out[i] = np.sqrt(values[i])


@numba.njit(error_model="numpy")
def _quotients(out, values, others, repeats):
    for _ in range(repeats):
        for i in range(out.size):
            out[i] = values[i] / others[i]


def divider_ns() -> float:
    """ns per element of a square root or a division (the slower), one thread, in L1."""
    rng = np.random.default_rng(0)
    out, values, others = np.ones(2048, np.float32), *(rng.random((2, 2048), np.float32) + 1)
    best = []
    for kernel in (_roots, _quotients):
        kernel(out, values, others, 1)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            kernel(out, values, others, 20000)
            times.append(time.perf_counter() - start)
        best.append(min(times) / (out.size * 20000) * 1e9)
    return max(best)


def report(name: str, loop, ns_per_op: float, elements: float, threads: int) -> None:
    (assembly,) = loop.variant(np.dtype(np.float32), False).inspect_asm().values()
    loops = vector_loops(assembly)
    # the update divides; int8's runs the clamp (min/max: m_bound is finite but for beta2 = 0)
    updates = [x for x in loops if "vdivps" in x[2] and (name != "int8" or "vminps" in x[2])]
    update = min(updates, key=lambda x: x[0] / x[1])
    width = "512-bit" if "zmm" in update[2] else "256-bit"
    line = f"{name:<10} {width} update loop: {update[0]} instructions / {update[1]} elements = {update[0] / update[1]:.2f}"
    divider = divider_ops(update[2]) / update[1]
    encoders = [x for x in loops if "vcvttps2dq" in x[2] and "vdivps" not in x[2]]
    if name == "int8" and encoders:
        encode = min(encoders, key=lambda x: x[0] / x[1])
        total = update[0] / update[1] + encode[0] / encode[1]
        divider += divider_ops(encode[2]) / encode[1]
        line += (
            f"; encode loop: {encode[0]} / {encode[1]} = {encode[0] / encode[1]:.2f}; "
            f"per element {total:.2f}"
        )
    floor = divider * ns_per_op * elements / threads / 1e6
    line += f"; sqrt+div per element {divider:.2f}: at least {floor:.1f} ms per step"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", choices=("default", "512"), default="default")
    parser.add_argument("--elements", type=float, default=1e8)
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    ns_per_op = divider_ns()
    print(
        f"a square root or division: {ns_per_op:.3f} ns per "
        f"element in L1; floors for {arguments.elements:.0e} elements on {arguments.threads} threads"
    )
    update = kernels.adam_update
    for name, loop in (
        ("float32", update),
        ("bfloat16", update.stored_as("bfloat16")),
        ("int8", update.stored_as("int8")),
    ):
        report(name, loop, ns_per_op, arguments.elements, arguments.threads)


if __name__ == "__main__":
    main()
