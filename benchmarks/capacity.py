"""How large a float32 model's Adam step fits in memory, with float32 and with int8 state:
a measurement, run by hand.

    python benchmarks/capacity.py 2.5e8 5e8 1e9          # sizes to measure, each in a child
    python benchmarks/capacity.py --check 1.2e9:float32 1.9e9:int8

Each size runs in a fresh process (spawned: the peak RSS is that process's alone) that makes
one layer of ``n`` float32 parameters and its gradient (both written, so every page is
resident), an Adam over them with the state dtype, and takes two steps; it prints its peak
resident set (``ru_maxrss``). A least-squares line through the peaks gives the bytes per
parameter and the fixed cost, and from them the largest ``n`` whose step fits the machine's
memory (``MemTotal`` less 1 GiB for the system).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource

import numpy as np


def peak_rss(n: int, state_dtype: str) -> int:
    """The peak resident bytes of a process that takes two Adam steps over ``n`` parameters."""
    import fastoptim
    from fastoptim.flat import FlatParams, Layout

    params = FlatParams(Layout(["w"], [(n,)], np.float32))
    params.buffer.fill(0.5)
    grads = params.zeros_like(prefix="d")
    grads.buffer.fill(1e-3)
    opt = fastoptim.Adam(params, lr=1e-3, state_dtype=state_dtype, nonfinite="ignore")
    for _ in range(2):
        opt.step(grads)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(n: int, state_dtype: str, queue) -> None:
    queue.put(peak_rss(n, state_dtype))


def measure(n: int, state_dtype: str) -> int | None:
    """``peak_rss`` in a spawned child (None if it died: out of memory)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child, args=(n, state_dtype, queue))
    child.start()
    child.join()
    return queue.get() if child.exitcode == 0 else None


def memory_total() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=float, help="default 2.5e8 5e8 1e9")
    parser.add_argument("--check", nargs="*", default=[], help="n:state_dtype to run once")
    args = parser.parse_args()
    if not args.sizes and not args.check:
        args.sizes = [2.5e8, 5e8, 1e9]
    usable = memory_total() - 2**30
    print(f"memory: {memory_total() / 2**30:.1f} GiB, usable for the step {usable / 2**30:.1f} GiB")
    for state_dtype in ("float32", "int8") if args.sizes else ():
        sizes = [int(s) for s in args.sizes]
        peaks = [measure(n, state_dtype) for n in sizes]
        for n, peak in zip(sizes, peaks, strict=True):
            print(f"  {state_dtype:<8} n={n:.3g}: peak RSS {peak / 2**30:.2f} GiB")
        slope, fixed = np.polyfit(sizes, peaks, 1)
        print(
            f"{state_dtype}: {slope:.2f} bytes per parameter + {fixed / 2**20:.0f} MiB; "
            f"largest step that fits: {(usable - fixed) / slope:.3g} parameters"
        )
    for spec in args.check:
        size, state_dtype = spec.split(":")
        peak = measure(int(float(size)), state_dtype)
        verdict = "out of memory" if peak is None else f"peak RSS {peak / 2**30:.2f} GiB"
        print(f"check {state_dtype} n={float(size):.3g}: {verdict}")


if __name__ == "__main__":
    main()
