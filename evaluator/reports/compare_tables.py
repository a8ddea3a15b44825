"""A comparison's tables for a terminal: runs, leaderboard, dimensions, pairs, reference."""

from __future__ import annotations

from rich.console import Console

from evaluator.reports import numbers as N
from evaluator.reports.compare import Comparison
from evaluator.reports.compare_types import PairedTest
from evaluator.reports.console import Column, Grid, say, show
from evaluator.reports.terminal import value
from evaluator.results.scores import COMPLETE


def _test(t: PairedTest | None) -> str:
    return "" if t is None else N.paired_cell(t.diff, t.p, t.significant, t.test)


def runs_grid(c: Comparison) -> Grid:
    grid = Grid(f"{c.benchmark}: runs", [
        Column("run", "left", key=True), Column("dir", "left"), Column("backend", "left"),
        Column("method", "left"), Column("preset", "left"), Column("CLIP", "left"),
        Column("answered"), Column("coverage"), Column("errors")])
    for r in c.runs:
        n = r.summary.counts
        grid.add_row(r.label, r.dir, r.summary.model.backend, r.method, r.summary.preset or "",
                     r.clip or "", f"{n.answered}/{n.selected}", N.share(n.answered, n.selected),
                     n.errors)
    return grid


def leaderboard_grid(c: Comparison) -> Grid:
    cols = [Column("run", "left", key=True), Column("method", "left")]
    for g in c.headline:
        cols += [Column(f"{g} task"), Column(f"{g} all")]
    grid = Grid("Leaderboard (task avg [bootstrap 95% CI] / question-weighted)", cols)
    for r in c.runs:
        cells = []
        for name in c.headline:
            g = r.summary.groups.get(name)
            if g is None or not g.available:
                cells += [N.NA, N.NA]
            else:
                cells += [f"{value(g.task, g)} {N.ci(g.task_ci95, brackets=True)}".strip(),
                          value(g.all, g)]
        grid.add_row(r.label, r.method, *cells)
    return grid


def dimensions_grid(c: Comparison) -> Grid:
    grid = Grid("Accuracy % per dimension [Wilson 95% CI]",
                [Column("dim", key=True), Column("name", "left", key=True)]
                + [Column(r.label) for r in c.runs])
    for d, name in c.dimensions:
        cells = []
        for r in c.runs:
            x = r.summary.dimensions.get(d)
            cells.append("" if x is None else
                         f"{N.pct(x.accuracy)} {N.ci(x.ci95, brackets=True)}".strip())
        grid.add_row(d, name, *cells)
    return grid


def pair_grids(c: Comparison) -> list[Grid]:
    names = dict(c.dimensions)
    out = []
    for p in c.pairs:
        grid = Grid(f"{p.a} vs {p.b}: difference in points (A - B) on {p.shared} shared "
                    "questions; n.s. = not significant", [
                        Column("", "left", key=True), Column("n"), Column("A %"), Column("B %"),
                        Column("A - B (McNemar)", wrap=True),
                        Column("task avg A - B (paired bootstrap)", wrap=True),
                        Column("no paired test because", "left", optional=True)])
        if p.note:
            grid.add_row("", "", "", "", "", "", p.note)
        for label, g in p.groups.items():
            if g.withheld:
                grid.add_row(label, "", "", "", "", "", g.withheld)
            else:
                a = g.all
                grid.add_row(label, a.n, N.pct(a.a), N.pct(a.b), _test(a), _test(g.task), "")
        for d, t in p.dimensions.items():
            grid.add_row(f"{d} {names.get(d, '')}", t.n, N.pct(t.a), N.pct(t.b), _test(t), "", "")
        out.append(grid)
    return out


def reference_grid(c: Comparison) -> Grid:
    ref = c.reference
    pub = ref.published
    grid = Grid(f"Published: {ref.name} - {pub['model']} ({pub['source']}; "
                f"{'task averages' if pub['average'] == 'task' else 'question-weighted'})", [
                    Column("run", "left", key=True), Column("group", "left", key=True),
                    Column("published"), Column("run value [95% CI]"), Column("run - published"),
                    Column("within CI", "left"), Column("method", "left"),
                    Column("preset", "left")])
    for row in ref.runs:
        method = (f"{row.method} vs {pub['method']}: "
                  f"{'match' if row.method_match else 'DIFFERENT'}")
        preset = ("not published" if row.preset_match is None else
                  f"{row.preset or 'none'} vs {pub.get('preset')}: "
                  f"{'match' if row.preset_match else 'DIFFERENT'}")
        for x in row.rows:
            mark = "" if x.status == COMPLETE or x.run is None else " (partial)"
            run_value = f"{N.pct(x.run)}{mark} {N.ci(x.ci95, brackets=True)}".strip()
            within = ({True: "yes", False: "no", None: ""}[x.within_ci] if x.why is None
                      else f"not compared: {x.why}")
            grid.add_row(row.run, x.group, N.pct(x.published, 1), run_value, N.signed(x.diff),
                         within, method, preset)
    return grid


def grids(c: Comparison) -> list[Grid]:
    out = [runs_grid(c), leaderboard_grid(c), dimensions_grid(c), *pair_grids(c)]
    if c.reference is not None:
        out.append(reference_grid(c))
    return out


def print_compare(c: Comparison, console: Console | None = None) -> None:
    console = console or Console()
    for w in c.warnings:
        say(console, f"warning: {w}", "yellow")
    for grid in grids(c):
        show(console, grid)
    for r in c.runs:
        for e in r.summary.error_reasons:
            say(console, f"errors ({r.label}): {e.count} x {e.status}: {e.reason} "
                         f"(e.g. {', '.join(e.examples)})")
    note = c.reference.published.get("note") if c.reference else None
    if note:
        say(console, f"note ({c.reference.name}): {note}")
    say(console, f"significance: {c.significance}")
