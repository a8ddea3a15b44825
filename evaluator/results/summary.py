"""The typed summary from the results store, and summary.json, submission.jsonl, errors.jsonl.

Everything here is derived from the store alone, so a finished, partial or
resumed run reports the same way, and a killed-and-resumed run writes files
identical to an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.data import benchmarks as B
from evaluator.results import coverage, failures, metrics, samples, stats, submission, subtypes
from evaluator.results.run_record import Provenance, RunRecord
from evaluator.results.runkey import RunKey
from evaluator.results.scores import ClipInfo, Counts, DimensionScore, GroupScore, ModelInfo, Summary
from evaluator.results.store import Store
from serving.atomic_files import write_atomic

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def build_summary(store: Store) -> Summary:
    run = store.meta("run")
    if run is None:
        raise ValueError(f"{store.path}: no run recorded yet")
    key = RunKey.from_run(run)
    return summarize(run, store.rows(key), key.preset, subtype_of=store.meta(SUBTYPES) or {})


SUBTYPES = "subtypes"  # store meta: question id -> subtype, for benchmarks that have one


def _preset(run: dict, preset_name: str | None) -> tuple[str | None, dict]:
    p = run.get("preset") or {"name": preset_name}
    return (p.get("name") if isinstance(p, dict) else p), p


def summarize(run: dict, rows: list, preset_name: str | None = None,
              predictions: dict | None = None, subtype_of: dict[str, str] | None = None) -> Summary:
    """The summary from a run record (the store's meta `run`) and one row per selected question
    (evaluator.results.store.Row: dimension, status, prediction, answer, unsupported, error);
    `subtype_of` maps question ids to their subtype where the benchmark has subtypes. The
    dimensions and groups are the benchmark definition's (evaluator.data.benchmarks)."""
    benchmark = run["benchmark"]
    bench = B.get(benchmark)
    outcomes = [metrics.Outcome(r.dimension, r.status, r.prediction == r.answer,
                                unparsed=r.status == "ok" and r.prediction is None)
                for r in rows if not r.unsupported]
    dim_stats = metrics.dimension_stats(benchmark, outcomes)
    avgs = metrics.averages(benchmark, dim_stats)
    cov = coverage.by_dimension(benchmark,
                                ((r.dimension, r.status, r.prediction == r.answer) for r in rows))
    draws = stats.dimension_draws({d: (s.correct, s.total) for d, s in dim_stats.items()})
    dims = {}
    for d in sorted(set(dim_stats) | set(cov)):
        s = dim_stats.get(d) or metrics.DimStat(name=bench.dimensions.get(d, f"dimension {d}"))
        c = cov.get(d) or coverage.DimCoverage()
        dims[d] = DimensionScore(
            id=d, name=s.name, correct=s.correct, n=s.total, errors=s.errors,
            unparsed=s.unparsed, accuracy=_r(s.accuracy),
            ci95=stats.rounded(stats.wilson(s.correct, s.total)), ci_method=stats.WILSON,
            selected=c.selected, correct_of_selected=c.correct,
            accuracy_of_selected=_r(c.accuracy_all))
    groups = {}
    for group in bench.groups:
        label, group_dims, requires = group.label, group.dims, group.requires
        v = avgs.get(label)
        present = [d for d in group_dims if d in dim_stats]
        n = sum(dim_stats[d].total for d in present)
        correct = sum(dim_stats[d].correct for d in present)
        gap = coverage.missing(cov, group_dims)
        common = {"name": label, "dimensions": tuple(group_dims), "n": n,
                  "complete": gap is None, "missing": gap,
                  "all_questions": coverage.all_questions(cov, group_dims, requires)}
        if v is None:
            groups[label] = GroupScore(available=False, **common)
            continue
        groups[label] = GroupScore(
            available=True, task=_r(v["task"]), all=_r(v["all"]),
            task_ci95=stats.rounded(stats.task_interval(draws, present)),
            all_ci95=stats.rounded(stats.wilson(correct, n)),
            dims_answered=v["dims_answered"], **common)
    answered = sum(1 for o in outcomes if o.status == "ok")
    errors = sum(1 for o in outcomes if o.status == "error")
    preset, preset_record = _preset(run, preset_name)
    return Summary(
        benchmark=benchmark, annotations=run["annotations"],
        model=ModelInfo.from_record(run["model"]), method=run["method"], preset=preset,
        preset_record=preset_record, include_end_of_turn=run["include_end_of_turn"],
        clip=ClipInfo.from_record(run.get("clip")), filters=run["filters"],
        dimensions=dims, groups=groups,
        counts=Counts(selected=len(rows), answered=answered, errors=errors,
                      unparsed=sum(1 for o in outcomes if o.unparsed),
                      pending=len(outcomes) - answered - errors,
                      skipped_invalid=run["skipped_invalid"],
                      skipped_unsupported=sum(1 for r in rows if r.unsupported)),
        error_reasons=tuple(failures.group(failures.errored(rows))),
        notes=tuple(sorted({r.unsupported for r in rows if r.unsupported})),
        intervals=stats.describe(), provenance=Provenance.from_dict(run.get("provenance")),
        predictions=predictions,
        subtypes=subtypes.breakdown(bench, rows, subtype_of or {}) if bench.subtype_field else ())


def write_outputs(store: Store, out_dir: str | Path) -> Summary:
    summary = build_summary(store)
    out = Path(out_dir)
    write_atomic(out / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=2) + "\n")
    rows = store.rows(RunKey.from_run(store.meta("run")))
    # An unparsed reply (prediction None) gets no line: the submission never carries a guess.
    submission.write(out / "submission.jsonl",
                     ((r.question_id, r.prediction) for r in rows
                      if r.status == "ok" and r.prediction is not None))
    failures.write_jsonl(out / failures.ERRORS_FILE, failures.errored(rows))
    samples.write(out / samples.SAMPLES_FILE, store, RunKey.from_run(store.meta("run")), rows)
    return summary


def write_run(out_dir: str | Path, record: RunRecord) -> None:
    write_atomic(Path(out_dir) / RUN_FILE, json.dumps(record.to_dict(), indent=2) + "\n")


def read_run(out: Path) -> RunRecord | None:
    """The last invocation's run.json, or None when there is none (or it cannot be read)."""
    try:
        return RunRecord.from_dict(json.loads((out / RUN_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
