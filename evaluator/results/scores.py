"""The typed summary of a run: what every renderer and API caller reads.

summary.json is this object's `to_dict()`; its fields and their meanings are a
file format users' scripts parse, so `to_dict` writes exactly the keys the file
has always had (new ones may be added, none renamed or dropped). Everything
else in the evaluator reads the attributes, never the dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.data import benchmarks as B
from evaluator.results.failures import ErrorGroup
from evaluator.results.run_record import Provenance
from evaluator.results.subtypes import SubtypeScore

Interval = tuple[float, float]
COMPLETE, PARTIAL, NOT_AVAILABLE = "complete", "partial", "n/a"


def _pair(ci: Interval | None) -> list[float] | None:
    return None if ci is None else [ci[0], ci[1]]


@dataclass(frozen=True)
class Missing:
    """What a partial group lacks: dimensions without any answer, unanswered questions."""

    dimensions: tuple[int, ...]
    questions: int

    def to_dict(self) -> dict:
        return {"dimensions": list(self.dimensions), "questions": self.questions}

    def describe(self) -> str:
        parts = []
        if self.dimensions:
            parts.append(f"no answers in dims {ranges(self.dimensions)}")
        if self.questions:
            parts.append(f"{self.questions} question(s) unanswered")
        return "; ".join(parts)


def ranges(dims) -> str:
    """[1, 2, 3, 7] -> "1-3,7"."""
    dims = sorted(dims)
    out, start = [], None
    for i, d in enumerate(dims):
        if start is None:
            start = d
        if i + 1 == len(dims) or dims[i + 1] != d + 1:
            out.append(str(start) if start == d else f"{start}-{d}")
            start = None
    return ",".join(out)


@dataclass(frozen=True)
class DimensionScore:
    """One dimension: accuracy over answered questions, and the leaderboard view."""

    id: int
    name: str
    correct: int
    n: int  # answered questions (errors and unanswered ones are not scored)
    errors: int
    unparsed: int  # answered, the reply named no single option (scored wrong)
    accuracy: float | None  # percent, None when nothing was answered
    ci95: Interval | None  # Wilson
    ci_method: str
    selected: int  # every selected question, unsupported and errored ones included
    correct_of_selected: int
    accuracy_of_selected: float | None  # leaderboard view: unanswered count as wrong

    @property
    def answered(self) -> int:
        return self.n

    def to_dict(self) -> dict:
        return {"name": self.name, "correct": self.correct, "total": self.n,
                "errors": self.errors, "unparsed": self.unparsed, "accuracy": self.accuracy,
                "n": self.n, "ci95": _pair(self.ci95), "ci_method": self.ci_method}

    def all_questions_dict(self) -> dict:
        return {"selected": self.selected, "correct": self.correct_of_selected,
                "accuracy": self.accuracy_of_selected}


@dataclass(frozen=True)
class AllQuestionsGroup:
    """A group in the leaderboard view: every selected question counts, unanswered = wrong."""

    task: float | None
    all: float | None
    correct: int
    selected: int

    def to_dict(self, complete: bool, missing: Missing | None) -> dict:
        return {"task": self.task, "all": self.all, "correct": self.correct,
                "selected": self.selected, "complete": complete,
                "missing": None if missing is None else missing.to_dict()}


@dataclass(frozen=True)
class GroupScore:
    """A group (L1, Single, Video, ...): its two averages, their intervals and coverage.

    `available` is False (status n/a) when none of the dimensions the group needs
    has an answer: then it has no score at all, which is not a score of zero.
    """

    name: str
    dimensions: tuple[int, ...]  # the dims averaged
    available: bool
    task: float | None = None  # mean of per-dimension accuracies
    task_ci95: Interval | None = None  # stratified bootstrap
    all: float | None = None  # question-weighted: correct / answered
    all_ci95: Interval | None = None  # Wilson
    n: int = 0  # answered questions in its dimensions
    dims_answered: int = 0
    complete: bool = False
    missing: Missing | None = None  # None when complete
    all_questions: AllQuestionsGroup | None = None
    ci_method: str = "bootstrap"
    all_ci_method: str = "wilson"

    @property
    def dims_of(self) -> int:
        return len(self.dimensions)

    @property
    def status(self) -> str:
        """"complete", "partial" or "n/a"."""
        return NOT_AVAILABLE if not self.available else COMPLETE if self.complete else PARTIAL

    def why(self) -> str:
        """What keeps the group from complete ("" when complete)."""
        return self.missing.describe() if self.missing else ""

    def averages_dict(self) -> dict | None:
        if not self.available:
            return None
        return {"task": self.task, "all": self.all, "dims_answered": self.dims_answered,
                "dims": self.dims_of, "complete": self.complete,
                "missing": None if self.missing is None else self.missing.to_dict(),
                "n": self.n, "ci95": _pair(self.task_ci95), "ci_method": self.ci_method,
                "all_ci95": _pair(self.all_ci95), "all_ci_method": self.all_ci_method}


@dataclass(frozen=True)
class Counts:
    selected: int
    answered: int
    errors: int
    unparsed: int
    pending: int  # runnable, not attempted yet
    skipped_invalid: int
    skipped_unsupported: int

    def to_dict(self) -> dict:
        return {"selected": self.selected, "answered": self.answered, "errors": self.errors,
                "unparsed": self.unparsed, "pending": self.pending,
                "skipped_invalid": self.skipped_invalid,
                "skipped_unsupported": self.skipped_unsupported}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    fingerprint: str
    backend: str
    details: dict = field(default_factory=dict, hash=False)

    @classmethod
    def from_record(cls, m: dict) -> ModelInfo:
        return cls(str(m.get("name", "")), str(m.get("fingerprint", "")),
                   str(m.get("backend", "")), dict(m.get("details") or {}))

    def to_dict(self) -> dict:
        return {"name": self.name, "fingerprint": self.fingerprint, "backend": self.backend,
                "details": dict(self.details)}


@dataclass(frozen=True)
class ClipInfo:
    name: str
    fingerprint: str
    checkpoint: str | None = None

    @classmethod
    def from_record(cls, c: dict | None) -> ClipInfo | None:
        if not c:
            return None
        return cls(str(c.get("name", "")), str(c.get("fingerprint", "")), c.get("checkpoint"))

    def to_dict(self) -> dict:
        return {"name": self.name, "checkpoint": self.checkpoint, "fingerprint": self.fingerprint}

    def label(self) -> str:
        return f"{self.name} ({self.fingerprint})"


@dataclass(frozen=True)
class Summary:
    """A run's scores: dimensions by id, groups by name, counts, errors, provenance."""

    benchmark: str
    annotations: str
    model: ModelInfo
    method: str
    preset: str | None  # the preset's name (None: before presets, or a predictions file)
    preset_record: dict  # the preset as recorded (summary.json `preset`)
    include_end_of_turn: bool | None
    clip: ClipInfo | None
    filters: dict
    dimensions: dict[int, DimensionScore]
    groups: dict[str, GroupScore]
    counts: Counts
    error_reasons: tuple[ErrorGroup, ...]
    notes: tuple[str, ...]
    intervals: dict  # what the ci95 fields are (stats.describe)
    provenance: Provenance | None = None
    predictions: dict | None = None  # `seedbench score`: what the predictions file held
    subtypes: tuple[SubtypeScore, ...] = ()  # benchmarks with a subtype field (2-Plus)

    @property
    def method_label(self) -> str:
        return self.method + (" +eot" if self.include_end_of_turn else "")

    @property
    def all_failed(self) -> bool:
        """Every question that was tried errored: nothing to score, the run failed."""
        return self.counts.answered == 0 and self.counts.errors > 0

    @property
    def partial(self) -> bool:
        """Some selected question has no answer, or some group lacks dimensions."""
        c = self.counts
        return (c.answered < c.selected
                or any(g.status == PARTIAL for g in self.groups.values()))

    def headline(self) -> list[str]:
        """The groups a leaderboard shows first: the benchmark's headline ones this summary has,
        else all of its groups."""
        bench = B.find(self.benchmark)
        wanted = [g for g in bench.headline if g in self.groups] if bench else []
        return wanted or list(self.groups)

    def to_dict(self) -> dict:
        """summary.json's content (the file format: keys are never renamed or dropped)."""
        out = {
            "benchmark": self.benchmark, "annotations": self.annotations,
            "model": self.model.to_dict(), "method": self.method,
            "preset": self.preset_record, "include_end_of_turn": self.include_end_of_turn,
            "clip": None if self.clip is None else self.clip.to_dict(),
            "filters": self.filters,
            "dimensions": {str(d): s.to_dict() for d, s in self.dimensions.items()},
            "averages": {k: g.averages_dict() for k, g in self.groups.items()},
            "all_questions": {
                "dimensions": {str(d): s.all_questions_dict() for d, s in self.dimensions.items()},
                "averages": {k: None if g.all_questions is None
                             else g.all_questions.to_dict(g.complete, g.missing)
                             for k, g in self.groups.items()}},
            "group_coverage": {k: {"complete": g.complete,
                                   "missing": None if g.missing is None else g.missing.to_dict()}
                               for k, g in self.groups.items()},
            "counts": self.counts.to_dict(),
            "error_reasons": [g.as_dict() for g in self.error_reasons],
            "notes": list(self.notes),
            "intervals": self.intervals,
        }
        if self.provenance is not None:
            out["provenance"] = self.provenance.to_dict()
        if self.predictions is not None:
            out["predictions"] = self.predictions
        if self.subtypes:
            out["subtypes"] = [s.to_dict() for s in self.subtypes]
        return out
