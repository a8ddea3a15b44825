"""`seedbench score`: a predictions file (ours or a published one) scored against annotations.

The predictions are read tolerantly (evaluator.results.submission.read: `},` line ends,
extra keys such as gt_answer, repeated ids with the last one winning, one JSON
array); the scores are the same summary a run writes (evaluator.results.summary.summarize),
so the answered-only averages and the leaderboard view (a selected question
without a prediction counts as wrong) come side by side and a file with gaps is
marked partial. Only the question ids, dimensions and answers are used: no media
root is needed. What was odd in the file is counted and shown, never dropped
silently: predictions other than A-D (scored wrong, as `unparsed`), ids not in the
annotations, repeated ids and lines that could not be read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.data import dataset, provenance
from evaluator.data.dataset import LETTERS
from evaluator.results import submission
from evaluator.results import summary as report
from evaluator.results.scores import Summary
from evaluator.results.store import Row

METHOD = "predictions file"


@dataclass
class Scored:
    summary: Summary | None
    predictions_read: int = 0
    not_a_letter: list[str] = field(default_factory=list)  # ids whose prediction is not A-D
    unknown_ids: list[str] = field(default_factory=list)  # predicted ids the file lacks
    duplicates: list[str] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)
    missing: int = 0  # selected questions without a prediction

    def record(self) -> dict:
        return {"predictions_read": self.predictions_read, "missing": self.missing,
                "not_a_letter": self.not_a_letter, "unknown_ids": self.unknown_ids,
                "duplicates": self.duplicates, "bad_lines": self.bad_lines}


def letter(prediction: str) -> str | None:
    """The prediction as a letter A-D (any case), else None: scored wrong, never guessed."""
    p = prediction.strip().upper()
    return p if p in LETTERS else None


def score(annotations: str | Path, predictions: str | Path,
          filters: dataset.Filters | None = None,
          benchmark: str | None = None) -> tuple[Scored, dataset.Dataset]:
    """Raises dataset.AnnotationError (annotations) or OSError/UnicodeError (predictions).
    `benchmark` overrides the detection from the annotations' fields."""
    filters = filters or dataset.Filters()
    ds = dataset.parse(annotations, filters, benchmark)
    read = submission.read(predictions)
    everything = (ds if filters == dataset.Filters()
                  else dataset.parse(annotations, benchmark=ds.benchmark))
    known = {q.question_id for q in everything.questions} | {
        x.question_id for x in everything.invalid}
    rows, not_a_letter = [], []
    for q in ds.questions:
        pred = read.predictions.get(q.question_id)
        if pred is None:
            rows.append(Row(q.question_id, q.index, q.dimension, q.answer, None, None, None, None))
            continue
        got = letter(pred)
        if got is None:
            not_a_letter.append(q.question_id)
        rows.append(Row(q.question_id, q.index, q.dimension, q.answer, "ok", got, None, None))
    run = {"benchmark": ds.benchmark, "annotations": str(annotations),
           "model": {"name": str(predictions), "fingerprint": _digest(Path(predictions)),
                     "backend": METHOD, "details": {}},
           "method": METHOD, "preset": {"name": "as the file's producer ran it"},
           "include_end_of_turn": None, "clip": None, "filters": filters.as_dict(),
           "skipped_invalid": ds.rejected}
    run["provenance"] = provenance.record(ds, {}, run["model"], METHOD, run["preset"]["name"], None)
    scored = Scored(None, predictions_read=len(read.predictions), not_a_letter=not_a_letter,
                    unknown_ids=[i for i in read.predictions if i not in known],
                    duplicates=read.duplicates, bad_lines=read.bad_lines,
                    missing=sum(1 for r in rows if r.status is None))
    scored.summary = report.summarize(run, rows, predictions=scored.record(),
                                      subtype_of={q.question_id: q.subtype for q in ds.questions})
    return scored, ds


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def describe(scored: Scored, shown: int = 5) -> list[str]:
    """The lines saying what in the predictions file was odd (empty when nothing was)."""

    def some(ids: list) -> str:
        more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
        return ", ".join(map(str, ids[:shown])) + more

    out = [f"{scored.predictions_read} prediction(s) read"]
    if scored.missing:
        out.append(f"{scored.missing} selected question(s) have no prediction: not in the "
                   "answered-only averages, wrong in the leaderboard view")
    if scored.not_a_letter:
        out.append(f"{len(scored.not_a_letter)} prediction(s) are not a letter A-D (scored "
                   f"wrong, counted as unparsed): {some(scored.not_a_letter)}")
    if scored.unknown_ids:
        out.append(f"{len(scored.unknown_ids)} prediction(s) for ids the annotation file "
                   f"does not have (ignored): {some(scored.unknown_ids)}")
    if scored.duplicates:
        out.append(f"{len(scored.duplicates)} repeated id(s), the last prediction kept: "
                   f"{some(scored.duplicates)}")
    if scored.bad_lines:
        out.append(f"{len(scored.bad_lines)} line(s) could not be read (skipped): lines "
                   f"{some(scored.bad_lines)}")
    return out
