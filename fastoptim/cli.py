"""The ``fastoptim`` command line: ``python -m fastoptim demo`` and ``python -m fastoptim bench``."""

from __future__ import annotations

import argparse
import os
import sys


def _demo(args: argparse.Namespace) -> int:
    # The demo's loop runs numpy's BLAS between the updates: OpenMP threads that spin after
    # a parallel update would compete with it for the two cores (README, "Threads"). This
    # must be set before the OpenMP runtime loads, at the first parallel kernel.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    from fastoptim import demo, threads

    if args.threads is not None:
        threads.set_num_threads(args.threads)
    if args.distributed:
        return _distributed_demo(args)
    results = demo.run(epochs=args.epochs, progress=not args.no_progress)
    print(demo.format_table(results, args.epochs))
    if args.large_epochs > 0:
        large = demo.run_large(epochs=args.large_epochs, progress=not args.no_progress)
        print()
        print(demo.format_large_table(large, args.large_epochs))
    return 0


def _distributed_demo(args: argparse.Namespace) -> int:
    from fastoptim.demo import distributed
    from fastoptim.progress import ProgressBar

    try:
        from mpi4py import MPI
    except ImportError:
        print("--distributed needs mpi4py and MPI: pip install 'fastoptim[mpi]'", file=sys.stderr)
        return 2
    comm = MPI.COMM_WORLD
    show = comm.Get_rank() == 0 and not args.no_progress
    bar = ProgressBar(2 * len(distributed.OPTIMIZERS) * args.epochs) if show else None
    on_epoch = (lambda: bar.advance(f"{comm.Get_size()} ranks")) if bar else None
    results = distributed.run(args.epochs, comm, on_epoch=on_epoch)
    if bar:
        bar.close()
    if comm.Get_rank() == 0:
        print(distributed.format_table(results, args.epochs))
    return 0


def _bench(args: argparse.Namespace) -> int:
    import numba

    from fastoptim import bench
    from fastoptim.bench import report

    if args.sharded:
        from fastoptim.bench import sharded

        sharded.run(args.ranks, args.models, steps=args.steps)
        return 0
    if args.convergence:
        return _convergence(args)
    thread_counts = args.threads or [numba.config.NUMBA_NUM_THREADS]  # type: ignore[attr-defined]
    rows = bench.run(
        algorithms=args.algorithms,
        models=args.models,
        dtype=args.dtype,
        thread_counts=thread_counts,
        budget_seconds=args.budget,
        settle_seconds=args.settle_ms / 1e3,
        only=args.only,
        progress=not args.no_progress,
        state_dtype=args.state_dtype,
    )
    command = "python -m fastoptim bench " + " ".join(sys.argv[2:])
    if args.json:
        report.write_json(args.json, rows, command)
    if args.csv:
        report.write_csv(args.csv, rows)
    if args.plot:
        report.write_plot(args.plot, rows)
    return 0


def _convergence(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401
        import sklearn  # noqa: F401
        import torch  # noqa: F401
    except ImportError as error:
        print(
            f"bench --convergence needs torch, scikit-learn and matplotlib ({error}): "
            "pip install 'fastoptim[torch,study]' -c constraints.txt",
            file=sys.stderr,
        )
        return 2
    from fastoptim.bench import convergence

    def progress(label: str) -> None:
        if not args.no_progress:
            print(f"  done: {label}", file=sys.stderr, flush=True)

    runs, sweep = convergence.run_study(progress=progress)
    print(convergence.format_study(runs, sweep))
    convergence.plot_study(runs, args.plot or "convergence.png")
    print(f"loss curves: {args.plot or 'convergence.png'}")
    return 0


def _comma_list(convert):
    return lambda text: [convert(part) for part in text.split(",") if part]


def _algorithm_list(text: str) -> list[str]:
    """Names from fastoptim.bench.algorithms, comma-separated, or ``all``."""
    from fastoptim.bench.algorithms import ALGORITHMS

    names = list(ALGORITHMS) if text == "all" else _comma_list(str)(text)
    unknown = [name for name in names if name not in ALGORITHMS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown algorithm {unknown[0]!r}; choose from {', '.join(ALGORITHMS)} or all"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    from fastoptim.bench.algorithms import ALGORITHMS as BENCH_ALGORITHMS

    parser = argparse.ArgumentParser(
        prog="python -m fastoptim",
        description="fastoptim: optimizer steps for CPU training, one kernel over one flat buffer.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a course-style network on two moons with GD, Momentum and Adam, "
        "through fastoptim and through the numpy reference",
    )
    demo.add_argument("--epochs", type=int, default=2000, help="epochs per run (default 2000)")
    demo.add_argument(
        "--large-epochs",
        type=int,
        default=15,
        help="epochs of the large network after the course one (default 15; 0: skip it)",
    )
    demo.add_argument("--threads", type=int, default=None, help="kernel threads (default: all)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.add_argument(
        "--distributed",
        action="store_true",
        help="shard the optimizer over MPI ranks (mpiexec -n 2 python -m fastoptim demo "
        "--distributed) and compare with one process",
    )
    demo.set_defaults(handler=_demo)

    bench = commands.add_parser(
        "bench",
        help="time optimizer steps side by side: fastoptim, the course drop-ins, the numpy "
        "reference, the roof, torch.optim and DeepSpeedCPUAdam (when installed)",
    )
    bench.add_argument(
        "--algorithms",
        type=_algorithm_list,
        default=["adam", "momentum"],
        help=f"{', '.join(BENCH_ALGORITHMS)}, or all (default: adam,momentum)",
    )
    bench.add_argument(
        "--models",
        "--sizes",
        type=_comma_list(str),
        default=["1e5", "1e6", "1e7", "1e8", "10000x1000", "course"],
        help="sizes (1e6: a weight plus a 1,000-element bias), LAYERSxSIZE, or course "
        "(default: 1e5,1e6,1e7,1e8,10000x1000,course)",
    )
    bench.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    bench.add_argument(
        "--state-dtype",
        choices=["bfloat16", "int8"],
        default=None,
        help="fastoptim's state dtype (default: the parameters'); the table adds fastoptim "
        "with float32 state and the roof of the smaller state",
    )
    bench.add_argument("--threads", type=_comma_list(int), default=None, help="e.g. 1,2")
    bench.add_argument("--budget", type=float, default=8.0, help="seconds per table (default 8)")
    bench.add_argument(
        "--settle-ms",
        type=float,
        default=15.0,
        help="pause before each timed step so no thread pool is still spinning (default 15)",
    )
    bench.add_argument(
        "--only",
        type=_comma_list(str),
        default=None,
        help="implementations to run (the roof always runs)",
    )
    bench.add_argument("--json", metavar="PATH")
    bench.add_argument("--csv", metavar="PATH")
    bench.add_argument(
        "--plot", metavar="PNG", help="needs matplotlib (pip install 'fastoptim[plot]')"
    )
    bench.add_argument("--no-progress", action="store_true")
    bench.add_argument(
        "--sharded",
        action="store_true",
        help="time a sharded Adam step on --ranks MPI processes (fastoptim.distributed, and "
        "torch's ZeroRedundancyOptimizer with gloo when torch is installed)",
    )
    bench.add_argument(
        "--convergence",
        action="store_true",
        help="the low-precision state study: three models trained with float32, bfloat16, "
        "bfloat16 rounded to nearest and int8 state, 3 seeds each, and a sweep of lr and "
        "beta2 (a few minutes; needs torch, scikit-learn, matplotlib; --plot sets the PNG, "
        "default convergence.png)",
    )
    bench.add_argument("--ranks", type=_comma_list(int), default=[1, 2, 3])
    bench.add_argument("--steps", type=int, default=30, help="timed steps per launch (--sharded)")
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
