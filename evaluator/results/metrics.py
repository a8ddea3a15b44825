"""Scores: per-dimension accuracy and the benchmark's averages. Pure functions, no I/O.

Accuracy is over ANSWERED questions; errored questions are counted apart and
never scored as wrong. An unparsed reply (generate method: the text named no
single option) is answered and wrong, and counted as `unparsed` too. Every
average comes two ways: "task" (mean of the per-dimension accuracies, the
SEED-Bench-2 paper's Task Average) and "all" (question-weighted, the
leaderboard's All Average and SEED-Bench-1's numbers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from evaluator.data import benchmarks as B


@dataclass(frozen=True)
class Outcome:
    dimension: int
    status: str | None  # "ok", "error", or None (not attempted)
    correct: bool = False
    unparsed: bool = False  # answered, but the reply named no single option


@dataclass
class DimStat:
    name: str
    correct: int = 0
    total: int = 0  # answered questions
    errors: int = 0
    unparsed: int = 0  # answered questions whose reply named no single option (wrong)

    @property
    def accuracy(self) -> float | None:
        return 100.0 * self.correct / self.total if self.total else None


def dimension_stats(benchmark: str, outcomes: Iterable[Outcome]) -> dict[int, DimStat]:
    """Every dimension of the benchmark, answered or not (so gaps show as n/a)."""
    stats = {d: DimStat(name=n) for d, n in B.get(benchmark).dimensions.items()}
    for o in outcomes:
        s = stats.setdefault(o.dimension, DimStat(name=f"dimension {o.dimension}"))
        if o.status == "ok":
            s.total += 1
            s.correct += int(o.correct and not o.unparsed)
            s.unparsed += int(o.unparsed)
        elif o.status == "error":
            s.errors += 1
    return stats


def task_average(stats: dict[int, DimStat], dims: Iterable[int]) -> float | None:
    accs = [stats[d].accuracy for d in dims if d in stats and stats[d].total]
    return sum(accs) / len(accs) if accs else None


def weighted_average(stats: dict[int, DimStat], dims: Iterable[int]) -> float | None:
    dims = [d for d in dims if d in stats]
    total = sum(stats[d].total for d in dims)
    return 100.0 * sum(stats[d].correct for d in dims) / total if total else None


def averages(benchmark: str, stats: dict[int, DimStat]) -> dict[str, dict | None]:
    """{label: {"task", "all", "dims_answered", "dims"}} or None where the group has no answers.

    A group needs at least one answered question among its own `requires` dims:
    L3 without image generation is n/a, not a copy of L2.
    """
    out: dict[str, dict | None] = {}
    for g in B.get(benchmark).groups:
        if not any(stats.get(d) and stats[d].total for d in g.requires):
            out[g.label] = None
            continue
        out[g.label] = {
            "task": task_average(stats, g.dims),
            "all": weighted_average(stats, g.dims),
            "dims_answered": sum(1 for d in g.dims if d in stats and stats[d].total),
            "dims": len(g.dims),
        }
    return out
