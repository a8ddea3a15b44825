"""The run's tables for a terminal: dimensions, averages, the leaderboard view, errors,
replicas and API usage, drawn from summary.json's content."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evaluator.results.summary import all_failed


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
    if summary.get("subtypes"):
        out.insert(1, subtype_table(summary["subtypes"], head))
    if summary["error_reasons"]:
        out.append(error_table(summary["error_reasons"], head))
    return out


def subtype_table(records: list[dict], head: str = "") -> Table:
    """Accuracy per subtype within each category (SEED-Bench-2-Plus question_image_subtype)."""
    t = Table(title="Accuracy per subtype (answered questions)" + (f"\n{head}" if head else ""))
    for col, just in (("category", "left"), ("subtype", "left"), ("correct", "right"),
                      ("answered", "right"), ("errors", "right"), ("accuracy %", "right"),
                      ("95% CI (Wilson)", "right"), ("selected", "right")):
        t.add_column(col, justify=just)
    for r in records:
        t.add_row(r["category"], Text(r["subtype"]), str(r["correct"]), str(r["total"]),
                  str(r["errors"]) if r["errors"] else "", _pct(r["accuracy"]), _ci(r["ci95"]),
                  str(r["selected"]))
    return t


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
