"""`seedbench report --format markdown|csv|json`: the summary as text for documents and scripts.

Markdown holds the same tables as the terminal (for a README or an issue);
CSV is one row per dimension, per subtype (SEED-Bench-2-Plus) and per group with
raw numbers and a status column, for a spreadsheet; JSON is summary.json's content.
"""

from __future__ import annotations

import csv
import io
import json

from evaluator.reports import terminal
from evaluator.results.scores import Summary

FORMATS = ("table", "markdown", "csv", "json")
CSV_COLUMNS = ("kind", "id", "name", "status", "accuracy", "ci95_low", "ci95_high",
               "task_avg", "task_ci95_low", "task_ci95_high", "question_weighted",
               "question_weighted_ci95_low", "question_weighted_ci95_high", "n", "correct",
               "errors", "unparsed", "selected", "all_questions_accuracy",
               "all_questions_task_avg", "all_questions_weighted", "missing")


def markdown(s: Summary) -> str:
    parts = [g.markdown() for g in terminal.report_grids(s)]
    parts.append(terminal.counts_line(s) + "\n")
    parts += [f"- note: {n}\n" for n in s.notes]
    return "\n".join(parts)


def _lo_hi(ci) -> tuple:
    return (None, None) if ci is None else (ci[0], ci[1])


def csv_text(s: Summary) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for d, x in s.dimensions.items():
        lo, hi = _lo_hi(x.ci95)
        w.writerow({"kind": "dimension", "id": d, "name": x.name,
                    "status": "answered" if x.n else "n/a", "accuracy": x.accuracy,
                    "ci95_low": lo, "ci95_high": hi, "n": x.n, "correct": x.correct,
                    "errors": x.errors, "unparsed": x.unparsed, "selected": x.selected,
                    "all_questions_accuracy": x.accuracy_of_selected})
    for x in s.subtypes:
        lo, hi = _lo_hi(x.ci95)
        w.writerow({"kind": "subtype", "id": f"{x.category}/{x.subtype}", "name": x.subtype,
                    "status": "answered" if x.n else "n/a", "accuracy": x.accuracy,
                    "ci95_low": lo, "ci95_high": hi, "n": x.n, "correct": x.correct,
                    "errors": x.errors, "unparsed": x.unparsed, "selected": x.selected})
    for k, g in s.groups.items():
        tlo, thi = _lo_hi(g.task_ci95)
        alo, ahi = _lo_hi(g.all_ci95)
        a = g.all_questions
        w.writerow({"kind": "group", "id": k, "name": k, "status": g.status,
                    "task_avg": g.task, "task_ci95_low": tlo, "task_ci95_high": thi,
                    "question_weighted": g.all, "question_weighted_ci95_low": alo,
                    "question_weighted_ci95_high": ahi, "n": g.n if g.available else None,
                    "all_questions_task_avg": a.task if a else None,
                    "all_questions_weighted": a.all if a else None, "missing": g.why()})
    return buf.getvalue()


def json_text(s: Summary) -> str:
    return json.dumps(s.to_dict(), indent=2)


def render(s: Summary, fmt: str) -> str:
    """The summary in `fmt` (markdown, csv or json)."""
    return {"markdown": markdown, "csv": csv_text, "json": json_text}[fmt](s)
