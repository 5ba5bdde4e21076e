"""Turn timings into rows (ms/step, ns/element, GB/s, % of roof, ratios) and write them out."""

from __future__ import annotations

import csv
import json
import platform
import statistics
from typing import Any

from fastoptim.bench.problems import Problem
from fastoptim.bench.timing import Timing

ROOF = "roof"
FASTOPTIM = "fastoptim"
KERNEL_ALONE = "fastoptim kernel alone"


def rows_for(problem: Problem, timings: list[Timing], rounds: int) -> list[dict[str, Any]]:
    medians = {t.name: t.median for t in timings}
    rows = []
    for timing in timings:
        seconds = timing.median
        q1, q3 = timing.quartiles()
        rows.append(
            {
                "algorithm": problem.algorithm,
                "model": problem.model,
                "elements": problem.elements,
                "layers": len(problem.shapes),
                "dtype": problem.dtype.name,
                "state_dtype": problem.state_dtype or problem.dtype.name,
                "threads": problem.threads,
                "implementation": timing.name,
                "rounds": rounds,
                "ms_per_step": seconds * 1e3,
                "ms_q1": q1 * 1e3,
                "ms_q3": q3 * 1e3,
                "ns_per_element": seconds * 1e9 / max(problem.elements, 1),
                "gb_per_s": problem.bytes_per_step / seconds / 1e9,
                "percent_of_roof": 100 * medians[ROOF] / seconds if ROOF in medians else None,
                # how many times faster this row is than each other implementation
                "speedup_over": {name: other / seconds for name, other in medians.items()},
                "python_ms_per_step": _python_overhead(timing, timings),
            }
        )
    return rows


def _python_overhead(timing: Timing, timings: list[Timing]) -> float | None:
    """For the fastoptim row: the median over rounds of (fastoptim - kernel alone) in ms,
    what its Python adds to the same compiled kernel on the same buffers."""
    kernel = next((t for t in timings if t.name == KERNEL_ALONE), None)
    if timing.name != FASTOPTIM or kernel is None:
        return None
    return 1e3 * statistics.median(
        a - b for a, b in zip(timing.samples, kernel.samples, strict=True)
    )


def format_problem(rows: list[dict[str, Any]]) -> str:
    first = rows[0]
    lines = [
        f"{first['algorithm'].capitalize()}, model {first['model']}: {first['elements']:,} "
        f"elements in {first['layers']:,} layers, {first['dtype']}"
        + (
            f" ({first['state_dtype']} state: GB/s and the roof count its bytes)"
            if first["state_dtype"] != first["dtype"]
            else ""
        )
        + f", {first['threads']} thread(s), median of {first['rounds']} interleaved rounds",
        f"  {'implementation':<24}{'ms/step':>10}{'ns/elem':>9}{'GB/s':>8}{'% roof':>8}"
        f"{'fastoptim speed-up':>20}",
    ]
    for row in rows:
        roof = row["percent_of_roof"]
        versus = (
            1 / row["speedup_over"]["fastoptim"] if "fastoptim" in row["speedup_over"] else None
        )
        lines.append(
            f"  {row['implementation']:<24}{row['ms_per_step']:>10.4f}{row['ns_per_element']:>9.3f}"
            f"{row['gb_per_s']:>8.1f}{'' if roof is None else f'{roof:.0f}%':>8}"
            f"{'' if versus is None else f'{versus:.2f}x':>20}"
        )
    for row in rows:
        if row["python_ms_per_step"] is not None:
            lines.append(
                "  fastoptim's Python per step (median over rounds of fastoptim - kernel alone): "
                f"{row['python_ms_per_step'] * 1e3:.1f} us"
            )
    names = [row["implementation"] for row in rows]
    width = max(len(n) for n in names) + 2
    lines.append("  speed-up of each row over each column:")
    lines.append("  " + " " * width + "".join(f"{_short(n):>9}" for n in names))
    for row in rows:
        cells = "".join(f"{row['speedup_over'][n]:>8.2f}x" for n in names)
        lines.append(f"  {row['implementation']:<{width}}{cells}")
    return "\n".join(lines)


def _short(name: str) -> str:
    return {
        "fastoptim": "fastopt",
        "fastoptim kernel alone": "kernel",
        "fastoptim checked": "checked",
        "fastoptim course dicts": "dicts",
        "numpy reference": "numpy",
        "roof": "roof",
        "torch for-loop": "t-loop",
        "torch foreach": "t-fe",
        "torch fused": "t-fused",
        "DeepSpeedCPUAdam": "DS",
        "fastoptim.torch": "fo.torch",
        "fastoptim.torch checked": "fo.t.chk",
    }.get(name, name[:8])


def machine() -> dict[str, str]:
    import numba
    import numpy

    info = {
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_json(path: str, rows: list[dict[str, Any]], command: str) -> None:
    with open(path, "w") as out:
        json.dump({"command": command, "machine": machine(), "results": rows}, out, indent=1)


def write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    names = sorted({name for row in rows for name in row["speedup_over"]})
    fields = [k for k in rows[0] if k != "speedup_over"] + [f"speedup_over {n}" for n in names]
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            flat = {k: v for k, v in row.items() if k != "speedup_over"}
            flat.update({f"speedup_over {n}": row["speedup_over"].get(n) for n in names})
            writer.writerow(flat)


def write_plot(path: str, rows: list[dict[str, Any]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'fastoptim[plot]'") from None
    sized = [r for r in rows if r["model"][0].isdigit() and "x" not in r["model"]]
    algorithms = sorted({r["algorithm"] for r in sized})
    figure, axes = plt.subplots(
        1, max(len(algorithms), 1), figsize=(6 * max(len(algorithms), 1), 4.5)
    )
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, algorithm in zip(axes, algorithms, strict=False):
        for name in dict.fromkeys(
            r["implementation"] for r in sized if r["algorithm"] == algorithm
        ):
            points = sorted(
                (r["elements"], r["gb_per_s"])
                for r in sized
                if r["algorithm"] == algorithm and r["implementation"] == name
            )
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("elements")
        ax.set_ylabel("GB/s (higher is better)")
        ax.set_title(algorithm)
        ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
