"""Summaries and tables from the results store: summary.json, submission.jsonl, errors.jsonl,
rich tables.

Everything here is derived from the store alone, so a finished, partial or
resumed run reports the same way, and a killed-and-resumed run writes files
identical to an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evaluator.data import dimensions as D
from evaluator.results import coverage, failures, metrics, submission
from evaluator.results import stats as intervals
from evaluator.results.runkey import RunKey
from evaluator.results.store import Store


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def build_summary(store: Store) -> dict:
    run = store.meta("run")
    if run is None:
        raise ValueError(f"{store.path}: no run recorded yet")
    key = RunKey.from_run(run)
    return summarize(run, store.rows(key), key.preset)


def summarize(run: dict, rows: list, preset_name: str | None = None) -> dict:
    """summary.json's content from a run record and one row per selected question
    (evaluator.results.store.Row: dimension, status, prediction, answer, unsupported, error)."""
    outcomes = [metrics.Outcome(r.dimension, r.status, r.prediction == r.answer,
                                unparsed=r.status == "ok" and r.prediction is None)
                for r in rows if not r.unsupported]
    stats = metrics.dimension_stats(run["benchmark"], outcomes)
    avgs = metrics.averages(run["benchmark"], stats)
    cov = coverage.by_dimension(run["benchmark"],
                                ((r.dimension, r.status, r.prediction == r.answer) for r in rows))
    answered = sum(1 for o in outcomes if o.status == "ok")
    errors = sum(1 for o in outcomes if o.status == "error")
    unparsed = sum(1 for o in outcomes if o.unparsed)
    unsupported = sum(1 for r in rows if r.unsupported)
    notes = sorted({r.unsupported for r in rows if r.unsupported})
    spec = {label: dims for label, dims, _ in D.averages_spec(run["benchmark"])}
    averages = {}
    for k, v in avgs.items():
        if v is None:
            averages[k] = None
            continue
        gap = coverage.missing(cov, spec[k])
        averages[k] = {**v, "task": _r(v["task"]), "all": _r(v["all"]),
                       "complete": gap is None, "missing": gap}
    summary = {
        "benchmark": run["benchmark"],
        "annotations": run["annotations"],
        "model": run["model"],
        "method": run["method"],
        "preset": run.get("preset") or {"name": preset_name},
        "include_end_of_turn": run["include_end_of_turn"],
        "clip": run.get("clip"),
        "filters": run["filters"],
        "dimensions": {
            str(d): {"name": s.name, "correct": s.correct, "total": s.total, "errors": s.errors,
                     "unparsed": s.unparsed, "accuracy": _r(s.accuracy)}
            for d, s in sorted(stats.items())
        },
        "averages": averages,
        "all_questions": coverage.all_questions(run["benchmark"], cov),
        "group_coverage": coverage.groups(run["benchmark"], cov),
        "counts": {
            "selected": len(rows), "answered": answered, "errors": errors, "unparsed": unparsed,
            "pending": len(outcomes) - answered - errors,
            "skipped_invalid": run["skipped_invalid"], "skipped_unsupported": unsupported,
        },
        "error_reasons": [g.as_dict() for g in failures.group(failures.errored(rows))],
        "notes": notes,
    }
    intervals.add_intervals(summary, D.averages_spec(run["benchmark"]))
    return summary


def write_outputs(store: Store, out_dir: str | Path) -> dict:
    summary = build_summary(store)
    out = Path(out_dir)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(out / "summary.json")
    rows = store.rows(RunKey.from_run(store.meta("run")))
    # An unparsed reply (prediction None) gets no line: the submission never carries a guess.
    submission.write(out / "submission.jsonl",
                     ((r.question_id, r.prediction) for r in rows
                      if r.status == "ok" and r.prediction is not None))
    failures.write_jsonl(out / failures.ERRORS_FILE, failures.errored(rows))
    return summary


def all_failed(summary: dict) -> bool:
    """Every question that was tried errored: nothing to score, the run failed."""
    c = summary["counts"]
    return c["answered"] == 0 and c["errors"] > 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f"{ci[0]:.1f}-{ci[1]:.1f}"


def heading(summary: dict) -> str:
    """Method, preset, coverage and errors: the line that heads every table."""
    c = summary["counts"]
    method = summary["method"]
    preset = summary.get("preset") or {}
    preset = f" - preset {preset.get('name') if isinstance(preset, dict) else preset}"
    share = f" ({100.0 * c['answered'] / c['selected']:.1f}%)" if c["selected"] else ""
    return (f"method {method}{preset} - answered {c['answered']}/{c['selected']}{share} - "
            f"errors {c['errors']}")


def _partial(v: dict) -> str:
    if v["complete"]:
        return "complete"
    gap = v["missing"]
    parts = []
    if gap["dimensions"]:
        parts.append(f"no answers in dims {_ranges(gap['dimensions'])}")
    if gap["questions"]:
        parts.append(f"{gap['questions']} question(s) unanswered")
    return "PARTIAL: " + "; ".join(parts)


def _no_answers(g: dict | None) -> str:
    """An n/a group's coverage cell: no score, and which dimensions it lacks."""
    return "no answers" if g is None else "n/a: " + _partial(g).removeprefix("PARTIAL: ")


def _ranges(dims: list[int]) -> str:
    out, start = [], None
    for i, d in enumerate(dims):
        if start is None:
            start = d
        if i + 1 == len(dims) or dims[i + 1] != d + 1:
            out.append(str(start) if start == d else f"{start}-{d}")
            start = None
    return ",".join(out)


def tables(summary: dict) -> list[Table]:
    m = summary["model"]
    head = heading(summary)
    dims = Table(title=Text(f"{summary['benchmark']} - {m['name']} ({m['backend']}, {m['fingerprint']})"
                 + (f" - CLIP {clip['name']} ({clip['fingerprint']})"
                    if (clip := summary.get("clip")) else "") + f"\n{head}"))
    for col, just in (("dim", "right"), ("name", "left"), ("correct", "right"),
                      ("answered", "right"), ("unparsed", "right"), ("errors", "right"),
                      ("accuracy %", "right"), ("95% CI (Wilson)", "right"), ("selected", "right"),
                      ("all-questions %", "right")):
        dims.add_column(col, justify=just)
    every = summary["all_questions"]["dimensions"]
    for d, s in summary["dimensions"].items():
        a = every.get(d, {"selected": 0, "accuracy": None})
        dims.add_row(d, s["name"], str(s["correct"]), str(s["total"]),
                     str(s["unparsed"]) if s["unparsed"] else "",
                     str(s["errors"]) if s["errors"] else "", _pct(s["accuracy"]),
                     _ci(s.get("ci95")), str(a["selected"]), _pct(a["accuracy"]))
    avg = Table(title="Averages over answered questions (task avg = mean of per-dimension "
                      f"accuracies; question-weighted = correct / answered)\n{head}")
    for col in ("group", "task avg %", "95% CI (bootstrap)", "question-weighted %",
                "95% CI (Wilson)", "n", "dims answered", "coverage"):
        avg.add_column(col, justify="left" if col in ("group", "coverage") else "right")
    gaps = summary.get("group_coverage", {})
    for k, v in summary["averages"].items():
        if v is None:
            avg.add_row(k, "n/a", "", "n/a", "", "", "", _no_answers(gaps.get(k)))
        else:
            mark = "" if v["complete"] else " (partial)"
            avg.add_row(k, _pct(v["task"]) + mark, _ci(v.get("ci95")), _pct(v["all"]) + mark,
                        _ci(v.get("all_ci95")), str(v.get("n", "")),
                        f"{v['dims_answered']}/{v['dims']}", _partial(v))
    lead = Table(title="Leaderboard view: every selected question counts, unanswered and "
                       f"errored ones as wrong\n{head}")
    for col in ("group", "task avg %", "question-weighted %", "correct / selected", "coverage"):
        lead.add_column(col, justify="left" if col in ("group", "coverage") else "right")
    for k, v in summary["all_questions"]["averages"].items():
        if v is None:
            lead.add_row(k, "n/a", "n/a", "", _no_answers(gaps.get(k)))
        else:
            mark = "" if v["complete"] else " (partial)"
            lead.add_row(k, _pct(v["task"]) + mark, _pct(v["all"]) + mark,
                         f"{v['correct']}/{v['selected']}", _partial(v))
    out = [dims, avg, lead]
    if summary["error_reasons"]:
        out.append(error_table(summary["error_reasons"], head))
    return out


def error_table(reasons: list[dict], head: str = "") -> Table:
    t = Table(title="Errors by reason" + (f"\n{head}" if head else ""))
    for col, just in (("count", "right"), ("status", "left"), ("reason", "left"),
                      ("example questions", "left")):
        t.add_column(col, justify=just)
    for g in reasons:
        t.add_row(str(g["count"]), g["status"], Text(g["reason"]), Text(", ".join(g["examples"])))
    return t


def _latency(ms: dict[str, float]) -> str:
    return " / ".join(f"{ms[k]:g}" for k in ("p50", "p90", "p99")) + " ms" if ms else "-"


def print_run(run: dict, console: Console | None = None) -> None:
    """This run's throughput, call latencies and how the replicas shared the calls."""
    console = console or Console()
    console.print(f"run: {run['answered']} answered in {run['elapsed_s']:g} s "
                  f"({run['throughput_qps']:g} questions/s, client CPU {run['cpu_s']:g} s); "
                  f"call latency p50 / p90 / p99: {_latency(run['latency_ms'])}", highlight=False)
    table = Table(title="Replicas")
    for col in ("replica", "status", "calls", "ok", "failures", "share", "latency p50 / p90 / p99"):
        table.add_column(col, justify="left" if col in ("replica", "status") else "right")
    total = sum(e["ok"] for e in run["endpoints"]) or 1
    for e in run["endpoints"]:
        table.add_row(e["target"], e["status"], str(e["calls"]), str(e["ok"]), str(e["failures"]),
                      f"{100 * e['ok'] / total:.0f}%", _latency(e.get("latency_ms", {})))
    console.print(table)
    if run.get("usage"):
        print_usage(run["usage"], run.get("stopped"), console)


def read_run(out: Path) -> dict | None:
    """The last run's run.json, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def print_usage(usage: dict, stopped: str | None = None, console: Console | None = None) -> None:
    """What the last run's calls cost a remote API: requests, retries, tokens, estimate."""
    if not usage.get("requests"):
        return  # a local model: nothing was billed
    console = console or Console()
    spent = usage.get("cost_usd")
    estimate = "no price for the model" if spent is None else f"${spent:.4f}"
    cap = usage.get("max_cost_usd")
    console.print(f"API usage (last run): {usage['requests']} request(s), {usage['retries']} "
                  f"retried, {usage['prompt_tokens']} prompt + {usage['completion_tokens']} "
                  f"completion tokens; estimated cost {estimate}"
                  + (f" (cap ${cap:g})" if cap is not None else ""), highlight=False)
    if stopped:
        console.print(f"stopped early: {stopped}", markup=False, highlight=False)


def print_report(summary: dict, console: Console | None = None) -> None:
    console = console or Console()
    for t in tables(summary):
        console.print(t)
    c = summary["counts"]
    console.print(f"answered {c['answered']}/{c['selected']} (unparsed {c['unparsed']}), "
                  f"errors {c['errors']}, "
                  f"pending {c['pending']}, skipped invalid {c['skipped_invalid']}, "
                  f"skipped unsupported {c['skipped_unsupported']}")
    for note in summary["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False)
    if all_failed(summary):
        top = summary["error_reasons"][:3]
        console.print(f"[red]FAILED: every one of the {c['errors']} question(s) asked "
                      "errored; most common reasons:")
        for g in top:
            console.print(f"  {g['count']} x {g['status']}: {g['reason']}", markup=False,
                          highlight=False)
