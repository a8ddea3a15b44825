"""The run's tables for a terminal (or a pipe): dimensions, group averages, the leaderboard
view, errors, provenance, replicas and API usage, all drawn from the typed summary and run
record. Tables fit the console's width (evaluator.reports.console); numbers are written by
evaluator.reports.numbers."""

from __future__ import annotations

from rich.console import Console

from evaluator.reports import numbers as N
from evaluator.reports.console import Column, Grid, say, show
from evaluator.results.run_record import Provenance, RunRecord, Usage
from evaluator.results.run_result import RunResult
from evaluator.results.scores import NOT_AVAILABLE, PARTIAL, GroupScore, Summary

PARTIAL_MARK = " (partial)"


def heading(s: Summary) -> str:
    """Method, preset, coverage and errors: the line that heads every table."""
    c = s.counts
    share = f" ({N.share(c.answered, c.selected)})" if c.selected else ""
    return (f"method {s.method} - preset {s.preset} - answered {c.answered}/{c.selected}{share}"
            f" - errors {c.errors}")


def title(s: Summary) -> str:
    m = s.model
    clip = f" - CLIP {s.clip.label()}" if s.clip else ""
    return f"{s.benchmark} - {m.name} ({m.backend}, {m.fingerprint}){clip}"


def coverage_text(g: GroupScore) -> str:
    """complete / PARTIAL: what is missing / n/a: why there is no score."""
    if g.status == NOT_AVAILABLE:
        return "n/a: " + (g.why() or "no answers")
    return "complete" if g.status != PARTIAL else "PARTIAL: " + g.why()


def value(x: float | None, g: GroupScore) -> str:
    """A group's number, marked where it is partial."""
    return N.pct(x) + (PARTIAL_MARK if g.status == PARTIAL and x is not None else "")


def dimension_grid(s: Summary) -> Grid:
    grid = Grid(f"{title(s)}\n{heading(s)}", [
        Column("dim", key=True), Column("name", "left", key=True), Column("accuracy %"),
        Column("95% CI (Wilson)"), Column("correct"), Column("answered"), Column("selected"),
        Column("all questions %"), Column("unparsed", optional=True),
        Column("errors", optional=True)])
    for d, x in s.dimensions.items():
        grid.add_row(d, x.name, N.pct(x.accuracy), N.ci(x.ci95), x.correct, x.n, x.selected,
                     N.pct(x.accuracy_of_selected), x.unparsed or "", x.errors or "")
    return grid


def subtype_grid(s: Summary) -> Grid:
    """Accuracy per subtype within each category (SEED-Bench-2-Plus question_image_subtype)."""
    grid = Grid(f"Accuracy per subtype (answered questions)\n{heading(s)}", [
        Column("category", "left", key=True), Column("subtype", "left", key=True),
        Column("accuracy %"), Column("95% CI (Wilson)"), Column("correct"), Column("answered"),
        Column("selected"), Column("errors", optional=True)])
    for x in s.subtypes:
        grid.add_row(x.category, x.subtype, N.pct(x.accuracy), N.ci(x.ci95), x.correct, x.n,
                     x.selected, x.errors or "")
    return grid


def group_grid(s: Summary, title: str, numbers: list[str]) -> Grid:
    """A table of the groups: name, the given number columns, coverage."""
    return Grid(f"{title}\n{heading(s)}", [Column("group", "left", key=True),
                                            *map(Column, numbers), Column("coverage", "left")])


def averages_grid(s: Summary) -> Grid:
    grid = group_grid(s, "Averages over answered questions (task avg = mean of per-dimension "
                         "accuracies; question-weighted = correct / answered)",
                      ["task avg %", "95% CI (bootstrap)", "question-weighted %", "95% CI (Wilson)",
                       "n", "dims answered"])
    for k, g in s.groups.items():
        if not g.available:
            grid.add_row(k, N.NA, "", N.NA, "", "", "", coverage_text(g))
        else:
            grid.add_row(k, value(g.task, g), N.ci(g.task_ci95), value(g.all, g),
                         N.ci(g.all_ci95), g.n, f"{g.dims_answered}/{g.dims_of}", coverage_text(g))
    return grid


def leaderboard_grid(s: Summary) -> Grid:
    grid = group_grid(s, "Leaderboard view: every selected question counts, unanswered and "
                         "errored ones as wrong",
                      ["task avg %", "question-weighted %", "correct / selected"])
    for k, g in s.groups.items():
        a = g.all_questions
        if a is None:
            grid.add_row(k, N.NA, N.NA, "", coverage_text(g))
        else:
            grid.add_row(k, value(a.task, g), value(a.all, g), f"{a.correct}/{a.selected}",
                         coverage_text(g))
    return grid


def error_grid(s: Summary) -> Grid:
    grid = Grid(f"Errors by reason\n{heading(s)}", [
        Column("count"), Column("status", "left", key=True), Column("reason", "left"),
        Column("example questions", "left")])
    for g in s.error_reasons:
        examples = ", ".join(g.examples)
        if g.messages and list(g.messages) != [g.reason]:  # the masked reason hides the specifics
            examples += "; e.g. " + " | ".join(g.messages)
        grid.add_row(g.count, g.status, g.reason, examples)
    return grid


def provenance_grid(p: Provenance) -> Grid:
    grid = Grid("Provenance", [Column("field", "left", key=True), Column("value", "left")])
    for name, text in p.items():
        grid.add_row(name, text)
    return grid


def report_grids(s: Summary) -> list[Grid]:
    out = [dimension_grid(s), *([subtype_grid(s)] if s.subtypes else []), averages_grid(s),
           leaderboard_grid(s)]
    if s.error_reasons:
        out.append(error_grid(s))
    if s.provenance is not None:
        out.append(provenance_grid(s.provenance))
    return out


def counts_line(s: Summary) -> str:
    c = s.counts
    return (f"answered {c.answered}/{c.selected} (unparsed {c.unparsed}), errors {c.errors}, "
            f"pending {c.pending}, skipped invalid {c.skipped_invalid}, "
            f"skipped unsupported {c.skipped_unsupported}")


def print_report(s: Summary, console: Console | None = None) -> None:
    console = console or Console()
    for grid in report_grids(s):
        show(console, grid)
    say(console, counts_line(s))
    for note in s.notes:
        say(console, f"note: {note}")
    if s.all_failed:
        say(console, f"FAILED: every one of the {s.counts.errors} question(s) asked errored; "
                     "most common reasons:", "red")
        for g in s.error_reasons[:3]:
            say(console, f"  {g.count} x {g.status}: {g.reason}")


def replicas_grid(run: RunRecord) -> Grid:
    grid = Grid("Replicas", [Column("replica", "left", key=True), Column("status", "left"),
                             Column("calls"), Column("ok"), Column("failures"), Column("share"),
                             Column("latency p50 / p90 / p99", wrap=True)])
    total = sum(e.ok for e in run.endpoints) or 1
    for e in run.endpoints:
        grid.add_row(e.target, e.status, e.calls, e.ok, e.failures, N.share(e.ok, total, 0),
                     N.latency(e.latency))
    return grid


def print_run(run: RunRecord, console: Console | None = None) -> None:
    """This invocation's throughput, call latencies and how the replicas shared the calls."""
    console = console or Console()
    say(console, f"run: {run.answered} answered in {run.elapsed_s:g} s "
                 f"({run.throughput_qps:g} questions/s, client CPU {run.cpu_s:g} s); "
                 f"call latency p50 / p90 / p99: {N.latency(run.latency)}")
    show(console, replicas_grid(run))
    if run.stale:
        say(console, f"{run.stale} question(s) asked again: their stored answers were to another "
                     "version of the question or of its images")
    if run.usage is not None:
        print_usage(run.usage, run.stopped, console)


def print_usage(usage: Usage, stopped: str | None = None, console: Console | None = None) -> None:
    """What the last invocation's calls cost a remote API: requests, retries, tokens, estimate."""
    if not usage.requests:
        return  # a local model: nothing was billed
    console = console or Console()
    estimate = "no price for the model" if usage.cost_usd is None else N.usd(usage.cost_usd)
    cap = usage.max_cost_usd
    say(console, f"API usage (last run): {usage.requests} request(s), {usage.retries} retried, "
                 f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens; "
                 f"estimated cost {estimate}" + (f" (cap ${cap:g})" if cap is not None else ""))
    if stopped:
        say(console, f"stopped early: {stopped}")


def print_result(result: RunResult, console: Console | None = None) -> None:
    """A finished run as `seedbench run` shows it: the report, then this invocation's record."""
    console = console or Console()
    print_report(result.summary, console)
    if result.run is not None:
        print_run(result.run, console)


def plan_grid(plan) -> Grid:
    """A RunPlan (evaluator.run.plan) as a table: handler per dimension, what cannot run."""
    grid = Grid(plan.title, [Column("dim", key=True), Column("name", "left", key=True),
                             Column("questions"), Column("handler", "left"),
                             Column("not run because", "left")])
    for d in plan.dimensions:
        grid.add_row(d.dimension, d.name, d.questions, d.handler or "", d.unsupported or "")
    return grid
