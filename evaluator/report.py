"""Summaries and tables from the results store: summary.json, submission.jsonl, rich tables.

Everything here is derived from the store alone, so a finished, partial or
resumed run reports the same way, and a killed-and-resumed run writes files
identical to an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evaluator import metrics, submission
from evaluator.runkey import RunKey
from evaluator.store import Store


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def build_summary(store: Store) -> dict:
    run = store.meta("run")
    if run is None:
        raise ValueError(f"{store.path}: no run recorded yet")
    key = RunKey.from_run(run)
    rows = store.rows(key)
    outcomes = [metrics.Outcome(r.dimension, r.status, r.prediction == r.answer,
                                unparsed=r.status == "ok" and r.prediction is None)
                for r in rows if not r.unsupported]
    stats = metrics.dimension_stats(run["benchmark"], outcomes)
    avgs = metrics.averages(run["benchmark"], stats)
    answered = sum(1 for o in outcomes if o.status == "ok")
    errors = sum(1 for o in outcomes if o.status == "error")
    unparsed = sum(1 for o in outcomes if o.unparsed)
    unsupported = sum(1 for r in rows if r.unsupported)
    notes = sorted({r.unsupported for r in rows if r.unsupported})
    return {
        "benchmark": run["benchmark"],
        "annotations": run["annotations"],
        "model": run["model"],
        "method": run["method"],
        "preset": run.get("preset") or {"name": key.preset},
        "include_end_of_turn": run["include_end_of_turn"],
        "clip": run.get("clip"),
        "filters": run["filters"],
        "dimensions": {
            str(d): {"name": s.name, "correct": s.correct, "total": s.total, "errors": s.errors,
                     "unparsed": s.unparsed, "accuracy": _r(s.accuracy)}
            for d, s in sorted(stats.items())
        },
        "averages": {k: None if v is None else {**v, "task": _r(v["task"]), "all": _r(v["all"])}
                     for k, v in avgs.items()},
        "counts": {
            "selected": len(rows), "answered": answered, "errors": errors, "unparsed": unparsed,
            "pending": len(outcomes) - answered - errors,
            "skipped_invalid": run["skipped_invalid"], "skipped_unsupported": unsupported,
        },
        "notes": notes,
    }


def write_outputs(store: Store, out_dir: str | Path) -> dict:
    summary = build_summary(store)
    out = Path(out_dir)
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(out / "summary.json")
    key = RunKey.from_run(store.meta("run"))
    # An unparsed reply (prediction None) gets no line: the submission never carries a guess.
    submission.write(out / "submission.jsonl",
                     ((r.question_id, r.prediction) for r in store.rows(key)
                      if r.status == "ok" and r.prediction is not None))
    return summary


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def tables(summary: dict) -> list[Table]:
    m = summary["model"]
    dims = Table(title=f"{summary['benchmark']} - {m['name']} ({m['backend']}, {m['fingerprint']})"
                 f" - method {summary['method']}, preset {summary['preset']['name']}"
                 + (f" - CLIP {clip['name']} ({clip['fingerprint']})"
                    if (clip := summary.get("clip")) else ""))
    for col, just in (("dim", "right"), ("name", "left"), ("correct", "right"),
                      ("answered", "right"), ("unparsed", "right"), ("errors", "right"),
                      ("accuracy %", "right")):
        dims.add_column(col, justify=just)
    for d, s in summary["dimensions"].items():
        dims.add_row(d, s["name"], str(s["correct"]), str(s["total"]),
                     str(s["unparsed"]) if s["unparsed"] else "",
                     str(s["errors"]) if s["errors"] else "", _pct(s["accuracy"]))
    avg = Table(title=f"Averages - method {summary['method']}, preset {summary['preset']['name']} "
                      "(task avg = mean of per-dimension accuracies; "
                      "question-weighted = correct / answered)")
    for col in ("group", "task avg %", "question-weighted %", "dims answered"):
        avg.add_column(col, justify="left" if col == "group" else "right")
    for k, v in summary["averages"].items():
        if v is None:
            avg.add_row(k, "n/a", "n/a", "")
        else:
            avg.add_row(k, _pct(v["task"]), _pct(v["all"]), f"{v['dims_answered']}/{v['dims']}")
    return [dims, avg]


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
        console.print(f"note: {note}")
