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
from evaluator.results.scores import AllQuestionsGroup, Missing


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


def missing(cov: dict[int, DimCoverage], dims: Iterable[int]) -> Missing | None:
    """None when the group is complete, else the dimensions without any answer and the
    number of selected questions without an answer."""
    dims = list(dims)
    no_answer = [d for d in dims if not cov.get(d, DimCoverage()).answered]
    unanswered = sum(cov[d].selected - cov[d].answered for d in dims if d in cov)
    if not no_answer and not unanswered:
        return None
    return Missing(tuple(no_answer), unanswered)


def has_answers(cov: dict[int, DimCoverage], dims: Iterable[int]) -> bool:
    return any(cov.get(d, DimCoverage()).answered for d in dims)


def all_questions(cov: dict[int, DimCoverage], dims: Iterable[int],
                  requires: Iterable[int]) -> AllQuestionsGroup | None:
    """A group in the leaderboard view: every selected question of its dims counted.

    None (n/a) under the same rule as the answered-only averages: no answer at all
    among the dimensions it needs (L3 for a model without image generation stays
    n/a, not 0).
    """
    if not has_answers(cov, requires):
        return None
    present = [cov[d] for d in dims if d in cov and cov[d].selected]
    selected = sum(c.selected for c in present)
    correct = sum(c.correct for c in present)
    accs = [c.accuracy_all for c in present]
    return AllQuestionsGroup(task=_r(sum(accs) / len(accs)) if accs else None,
                             all=_r(100.0 * correct / selected) if selected else None,
                             correct=correct, selected=selected)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
