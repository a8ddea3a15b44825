"""A run as the API hands it out: the typed summary, the run record, and its questions.

`load_run(out)` reads any run folder, finished or partial (a killed run, a
--limit run, one stopped by its cost cap): the summary comes from the results
store alone, so it is the same one the run itself would report; run.json, when
there is one, adds the last invocation's timings and usage.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from evaluator.results import summary as summaries
from evaluator.results.failures import Failure
from evaluator.results.run_record import Provenance, RunRecord
from evaluator.results.runkey import RunKey
from evaluator.results.scores import Summary
from evaluator.results.store import Store, StoreError


class RunLoadError(Exception):
    """A folder that holds no readable run; the message names the folder and why."""


@dataclass(frozen=True)
class QuestionResult:
    """One selected question of a run: its answer or error as stored."""

    question_id: str
    dimension: int
    answer: str  # the ground truth
    status: str | None  # "ok", "error", or None (not answered yet)
    prediction: str | None
    error: Failure | None  # status, message and attempts, as stored
    unsupported: str | None  # why it is not run (e.g. L3 without CLIP)
    evidence: object = None  # option scores or the L3 record, when asked for

    @property
    def correct(self) -> bool:
        return self.status == "ok" and self.prediction == self.answer


@dataclass(frozen=True)
class RunResult:
    """A run's results: `summary` (typed scores), `run` (the last invocation's record, None
    when it has none, e.g. killed), the warnings it gave, and the folder it lives in."""

    out: Path
    summary: Summary
    run: RunRecord | None = None
    warnings: tuple[str, ...] = ()

    @property
    def provenance(self) -> Provenance | None:
        return self.summary.provenance

    @property
    def partial(self) -> bool:
        return self.summary.partial

    @property
    def all_failed(self) -> bool:
        return self.summary.all_failed

    @property
    def stopped(self) -> str | None:
        """Why the last invocation stopped sending questions (its cost cap), or None."""
        return None if self.run is None else self.run.stopped

    def questions(self, evidence: bool | Collection[int] = False) -> list[QuestionResult]:
        """Every selected question in annotation order, read from the results store; with
        `evidence` (True, or a set of dimensions) the stored option scores / L3 records too."""
        store = open_store(self.out)
        try:
            key = RunKey.from_run(store.meta("run"))
            rows = store.rows(key)
            wanted = [r.question_id for r in rows if r.status == "ok" and (
                evidence is True or (evidence and r.dimension in evidence))]
            scores = store.scores(key, wanted) if wanted else {}
        finally:
            store.close()
        return [QuestionResult(r.question_id, r.dimension, r.answer, r.status, r.prediction,
                               r.error, r.unsupported, scores.get(r.question_id))
                for r in rows]


def open_store(out: str | Path) -> Store:
    """The run's results store; RunLoadError when the folder has none or it cannot be read."""
    out = Path(out)
    if not (out / Store.FILE).is_file():
        raise RunLoadError(f"{out}: not a run directory (no {Store.FILE})")
    try:
        return Store(out)
    except StoreError as exc:
        raise RunLoadError(str(exc)) from None


def load_run(out: str | Path) -> RunResult:
    """The run in folder `out` (a finished or partial run's --out). Raises RunLoadError."""
    out = Path(out)
    store = open_store(out)
    try:
        summary = summaries.build_summary(store)
    except ValueError as exc:
        raise RunLoadError(str(exc)) from None
    finally:
        store.close()
    return RunResult(out, summary, summaries.read_run(out))
