"""summary.json, submission.jsonl and errors.jsonl from the results store.

Everything here is derived from the store alone, so a finished, partial or
resumed run reports the same way, and a killed-and-resumed run writes files
identical to an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.data import benchmarks as B
from evaluator.results import coverage, failures, metrics, submission, subtypes
from evaluator.results import stats as intervals
from evaluator.results.runkey import RunKey
from evaluator.results.store import Store
from serving.atomic_files import write_atomic


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def build_summary(store: Store) -> dict:
    run = store.meta("run")
    if run is None:
        raise ValueError(f"{store.path}: no run recorded yet")
    key = RunKey.from_run(run)
    return summarize(run, store.rows(key), key.preset, store.meta(SUBTYPES) or {})


SUBTYPES = "subtypes"  # store meta: question id -> subtype, for benchmarks that have one


def summarize(run: dict, rows: list, preset_name: str | None = None,
              subtype_of: dict[str, str] | None = None) -> dict:
    """summary.json's content from a run record and one row per selected question
    (evaluator.results.store.Row: dimension, status, prediction, answer, unsupported, error);
    `subtype_of` maps question ids to their subtype where the benchmark has subtypes."""
    bench = B.get(run["benchmark"])
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
    spec = {g.label: g.dims for g in bench.groups}
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
        **({"annotation_source": run["annotation_source"]} if run.get("annotation_source") else {}),
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
    intervals.add_intervals(summary, bench.groups)
    if bench.subtype_field:
        summary["subtypes"] = subtypes.breakdown(bench, rows, subtype_of or {})
    return summary


def write_outputs(store: Store, out_dir: str | Path) -> dict:
    summary = build_summary(store)
    out = Path(out_dir)
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, sort_keys=False) + "\n")
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

def read_run(out: Path) -> dict | None:
    """The last run's run.json, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
