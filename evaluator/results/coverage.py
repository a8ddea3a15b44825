"""How much of each group was answered, and the all-questions (leaderboard) view.

A group average computed from some of its dimensions, or from some of their
questions, is partial and says so: `complete` is true only when every
dimension of the group has questions selected and every selected question of
those dimensions has an answer. The all-questions view scores every selected
question, counting unanswered ones (errored, not run, unsupported) as wrong,
as the benchmark's own submission converters do, so a run with errors can
never look better than it is. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from evaluator.data import benchmarks as B


@dataclass
class DimCoverage:
    selected: int = 0
    answered: int = 0
    correct: int = 0

    @property
    def accuracy_all(self) -> float | None:
        """Correct over every selected question (unanswered ones count as wrong)."""
        return 100.0 * self.correct / self.selected if self.selected else None


def by_dimension(benchmark: str, rows: Iterable[tuple[int, str | None, bool]]
                 ) -> dict[int, DimCoverage]:
    """rows: (dimension, status, correct) for EVERY selected question, unsupported included."""
    cov = {d: DimCoverage() for d in B.get(benchmark).dimensions}
    for dim, status, correct in rows:
        c = cov.setdefault(dim, DimCoverage())
        c.selected += 1
        if status == "ok":
            c.answered += 1
            c.correct += int(correct)
    return cov


def missing(cov: dict[int, DimCoverage], dims: Iterable[int]) -> dict | None:
    """None when the group is complete, else the dimensions without any answer and the
    number of selected questions without an answer."""
    dims = list(dims)
    no_answer = [d for d in dims if not cov.get(d, DimCoverage()).answered]
    unanswered = sum(cov[d].selected - cov[d].answered for d in dims if d in cov)
    if not no_answer and not unanswered:
        return None
    return {"dimensions": no_answer, "questions": unanswered}


def groups(benchmark: str, cov: dict[int, DimCoverage]) -> dict[str, dict]:
    """Every group's coverage, n/a groups included: `complete`, and `missing` (None when
    complete). The averages keep null for an n/a group (n/a is not zero); this says why."""
    return {g.label: {"complete": (gap := missing(cov, g.dims)) is None, "missing": gap}
            for g in B.get(benchmark).groups}


def has_answers(cov: dict[int, DimCoverage], dims: Iterable[int]) -> bool:
    return any(cov.get(d, DimCoverage()).answered for d in dims)


def all_questions(benchmark: str, cov: dict[int, DimCoverage]) -> dict:
    """The leaderboard view: per dimension and per group, every selected question counted.

    A group is null (n/a) under the same rule as the answered-only averages: no
    answer at all among the dimensions it needs (L3 for a model without image
    generation stays n/a, not 0).
    """
    dims_out = {str(d): {"selected": c.selected, "correct": c.correct,
                         "accuracy": _r(c.accuracy_all)}
                for d, c in sorted(cov.items())}
    groups: dict[str, dict | None] = {}
    for g in B.get(benchmark).groups:
        label, dims = g.label, g.dims
        if not has_answers(cov, g.requires):
            groups[label] = None
            continue
        present = [cov[d] for d in dims if d in cov and cov[d].selected]
        selected = sum(c.selected for c in present)
        correct = sum(c.correct for c in present)
        accs = [c.accuracy_all for c in present]
        gap = missing(cov, dims)
        groups[label] = {
            "task": _r(sum(accs) / len(accs)) if accs else None,
            "all": _r(100.0 * correct / selected) if selected else None,
            "correct": correct, "selected": selected,
            "complete": gap is None, "missing": gap,
        }
    return {"dimensions": dims_out, "averages": groups}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
