"""`seedbench report` and `seedbench compare`: a run's tables, or runs side by side, as a
terminal table, Markdown, CSV or JSON, with an HTML page and PNG figures on request."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from evaluator.cli.common import err, error
from evaluator.reports import compare, compare_tables, terminal, text_formats
from evaluator.reports.console import say
from evaluator.results.run_result import RunLoadError, load_run

PNG_HELP = ("also write heatmap.png and bars.png (needs matplotlib: pip install "
            "'seedbench-platform[reports]')")


def pages(comparison: compare.Comparison, html: str | None, png: str | None) -> int:
    """The HTML page and PNG exports, when asked for."""
    if html:
        from evaluator.reports import html as html_report

        try:
            say(err, f"wrote {html_report.write(comparison, html)}")
        except OSError as exc:
            return error(f"--html {html}: cannot write it ({exc.strerror or exc})")
    if png:
        from evaluator.reports import png as png_export

        try:
            for path in png_export.write(comparison, png):
                say(err, f"wrote {path}")
        except png_export.MatplotlibMissing as exc:
            return error(str(exc))
        except OSError as exc:
            return error(f"--png {png}: cannot write the figures ({exc.strerror or exc})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    try:
        result = load_run(args.dir)
        # Files first: a reader that leaves the printed tables early must not cost the page.
        rc = pages(compare.compare([result]), args.html, args.png) if args.html or args.png else 0
    except (RunLoadError, compare.CompareError) as exc:
        return error(str(exc))
    fmt = "json" if args.json else args.format
    if fmt == "table":
        terminal.print_report(result.summary)
        if result.run is not None and result.run.usage is not None:
            terminal.print_usage(result.run.usage, result.run.stopped)
    else:
        print(text_formats.render(result.summary, fmt), end="" if fmt == "csv" else "\n")
    if rc:
        return rc
    return 1 if result.all_failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        comparison = compare.compare(args.dirs, args.reference)
    except compare.CompareError as exc:
        return error(str(exc))
    rc = pages(comparison, args.html, args.png)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        compare_tables.print_compare(comparison, Console())
    return rc


def add_parsers(sub) -> None:
    rep = sub.add_parser("report", help="print the tables of a finished or partial run")
    rep.add_argument("dir", help="a run's --out folder (it holds results.sqlite)")
    rep.add_argument("--format", choices=text_formats.FORMATS, default="table",
                     help="table: for a terminal (fits its width); markdown; csv: one row per "
                          "dimension and group; json: summary.json's content")
    rep.add_argument("--json", action="store_true", help="the same as --format json")
    rep.add_argument("--html", metavar="OUT.html", help="also write a self-contained HTML page")
    rep.add_argument("--png", metavar="DIR", help=PNG_HELP)
    rep.set_defaults(func=cmd_report)

    cmp = sub.add_parser("compare", help="runs side by side, with paired tests and published rows")
    cmp.add_argument("dirs", nargs="+", metavar="RUN_DIR", help="runs' --out folders")
    cmp.add_argument("--reference", metavar="NAME",
                     help="put each run beside a published row (evaluator/data/references.json): "
                          + ", ".join(sorted(compare.references())))
    cmp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    cmp.add_argument("--html", metavar="OUT.html", help="also write a self-contained HTML page")
    cmp.add_argument("--png", metavar="DIR", help=PNG_HELP)
    cmp.set_defaults(func=cmd_compare)
