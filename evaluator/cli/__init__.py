"""seedbench: evaluate model servers on SEED-Bench-1, -2 and -2-Plus, report and compare runs,
score a predictions file, make sample data.

One module per command group: run (run, run --dry-run), reports (report, compare),
tools (presets, score, sample-data). Every command calls the library (evaluator.api's
functions); this package only turns flags into calls and results into output.
"""

from __future__ import annotations

import argparse
import os
import sys

from evaluator.cli import reports, run, tools


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seedbench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    reports.add_parsers(sub)
    tools.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader left early (`seedbench report RUN --json | head -1`): end quietly,
        # and keep the interpreter's final flush from complaining too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
