"""Accuracy per subtype, beside the dimensions (SEED-Bench-2-Plus: question_image_subtype).

A benchmark whose definition names a subtype field reports, for each
(dimension, subtype) pair seen among the selected questions, the same counts
a dimension gets: answered, correct, errors, unparsed, its accuracy over the
answered questions and the Wilson 95% interval. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from evaluator.data.benchmarks import Benchmark
from evaluator.results import stats

NONE = "(no subtype)"


@dataclass(frozen=True)
class SubtypeScore:
    dimension: int
    category: str  # the dimension's name (SEED-Bench-2-Plus: Chart, Map, Web)
    subtype: str
    selected: int
    n: int  # answered questions
    correct: int
    errors: int
    unparsed: int
    accuracy: float | None  # percent over the answered, None when nothing was answered
    ci95: tuple[float, float] | None  # Wilson

    def to_dict(self) -> dict:
        return {"dimension": self.dimension, "category": self.category, "subtype": self.subtype,
                "selected": self.selected, "total": self.n, "correct": self.correct,
                "errors": self.errors, "unparsed": self.unparsed, "accuracy": self.accuracy,
                "n": self.n, "ci95": None if self.ci95 is None else list(self.ci95),
                "ci_method": stats.WILSON}


def breakdown(bench: Benchmark, rows: Iterable, subtype_of: Mapping[str, str]
              ) -> tuple[SubtypeScore, ...]:
    """One score per (dimension, subtype), in dimension then subtype order. `rows`: the
    store's rows (question_id, dimension, status, prediction, answer, unsupported)."""
    counts: dict[tuple[int, str], dict] = {}
    for r in rows:
        key = (r.dimension, subtype_of.get(r.question_id) or NONE)
        c = counts.setdefault(key, {"selected": 0, "n": 0, "correct": 0, "errors": 0,
                                    "unparsed": 0})
        c["selected"] += 1
        if r.unsupported:
            continue
        if r.status == "ok":
            c["n"] += 1
            c["unparsed"] += int(r.prediction is None)
            c["correct"] += int(r.prediction is not None and r.prediction == r.answer)
        elif r.status == "error":
            c["errors"] += 1
    return tuple(
        SubtypeScore(dimension=dim, category=bench.dimensions.get(dim, f"dimension {dim}"),
                     subtype=subtype, **c,
                     accuracy=round(100.0 * c["correct"] / c["n"], 4) if c["n"] else None,
                     ci95=stats.rounded(stats.wilson(c["correct"], c["n"])))
        for (dim, subtype), c in sorted(counts.items()))
