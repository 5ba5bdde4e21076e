"""The ``fastoptim`` command line: ``python -m fastoptim demo``."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from fastoptim import demo, threads

    if args.threads is not None:
        threads.set_num_threads(args.threads)
    results = demo.run(epochs=args.epochs, progress=not args.no_progress)
    print(demo.format_table(results, args.epochs))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fastoptim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a course-style network on two moons with GD, Momentum and Adam, "
        "through fastoptim and through the numpy reference",
    )
    demo.add_argument("--epochs", type=int, default=2000, help="epochs per run (default 2000)")
    demo.add_argument("--threads", type=int, default=None, help="kernel threads (default: all)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
