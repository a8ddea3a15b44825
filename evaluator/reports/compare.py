"""`compare`: runs side by side, paired tests between them, published references.

A comparison is built from runs (RunResults, or their folders): the typed
summaries, which questions each run answered and whether correctly, and, for
L3, the stored generation records. It says only what holds: a group that is
n/a or partial in either run of a pair gets no paired test, and a run's group
that is n/a or partial gets no difference from a published number and no
"within the interval" claim; the reason is given instead. The terminal tables,
the HTML page and the PNG exports all draw from the typed Comparison;
`to_dict()` is what `compare --json` prints.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.data import benchmarks as B
from evaluator.data import references as reference_rows
from evaluator.reports.compare_types import (
    L3Answer,
    Pair,
    PairedGroup,
    PairedTest,
    ReferenceComparison,
    ReferenceRow,
    ReferenceRun,
)
from evaluator.results import stats
from evaluator.results.run_result import QuestionResult, RunLoadError, RunResult, load_run
from evaluator.results.scores import COMPLETE, NOT_AVAILABLE, Summary

# The leaderboard's method label of each --method.
LEADERBOARD_METHOD = {"ppl": "PPL", "letter": "PPL for A/B/C/D", "generate": "Generate"}
SIGNIFICANCE = (f"two-sided p < {stats.ALPHA}, each test on its own (no correction for the many "
                "dimensions compared)")


class CompareError(Exception):
    """A run directory or reference that cannot be compared: the message says which and why."""


@dataclass
class ComparedRun:
    """One run of a comparison: its result, its label, and its answers question by question."""

    result: RunResult
    questions: list[QuestionResult] = field(repr=False, default_factory=list)
    label: str = ""

    @property
    def summary(self) -> Summary:
        return self.result.summary

    @property
    def dir(self) -> Path:
        return self.result.out

    @property
    def method(self) -> str:
        return self.summary.method_label

    @property
    def clip(self) -> str | None:
        return self.summary.clip.label() if self.summary.clip else None

    @property
    def coverage(self) -> float | None:
        c = self.summary.counts
        return round(c.answered / c.selected, 4) if c.selected else None

    @property
    def correct(self) -> dict[str, tuple[int, bool]]:
        """Answered question id -> (dimension, correct)."""
        return {q.question_id: (q.dimension, q.correct) for q in self.questions if q.status == "ok"}

    @property
    def selected(self) -> frozenset[str]:
        return frozenset(q.question_id for q in self.questions)

    @property
    def l3(self) -> dict[str, L3Answer]:
        """The answered L3 questions with their stored evidence (for the HTML gallery)."""
        generated = _generation_dims(self.summary.benchmark)
        return {q.question_id: L3Answer(q.dimension, q.prediction, q.answer, q.evidence)
                for q in self.questions if q.status == "ok" and q.dimension in generated}

    def to_dict(self) -> dict:
        s = self.summary.to_dict()
        return {
            "label": self.label, "dir": str(self.dir), "benchmark": s["benchmark"],
            "model": s["model"], "annotations": s["annotations"], "method": self.method,
            "preset": self.summary.preset, "clip": self.clip, "filters": s["filters"],
            "counts": s["counts"], "coverage": self.coverage, "dimensions": s["dimensions"],
            "averages": s["averages"], "notes": s["notes"],
            "all_questions": s["all_questions"]["averages"], "error_reasons": s["error_reasons"],
            "subtypes": s.get("subtypes") or [],  # SEED-Bench-2-Plus: per question_image_subtype
        }


def _generation_dims(benchmark: str) -> frozenset[int]:
    """The benchmark's dimensions answered by image generation + CLIP (none if unknown)."""
    bench = B.find(benchmark)
    return bench.generation_dims if bench else frozenset()


@dataclass(frozen=True)
class Comparison:
    benchmark: str
    headline: tuple[str, ...]  # the groups leaderboards show
    dimensions: tuple[tuple[int, str], ...]  # (id, name) of every dimension any run has
    runs: tuple[ComparedRun, ...]
    warnings: tuple[str, ...]
    pairs: tuple[Pair, ...]
    reference: ReferenceComparison | None
    intervals: dict
    significance: str = SIGNIFICANCE

    def to_dict(self) -> dict:
        return {
            "benchmark": self.benchmark, "headline": list(self.headline),
            "dimensions": [{"id": d, "name": n} for d, n in self.dimensions],
            "runs": [r.to_dict() for r in self.runs], "warnings": list(self.warnings),
            "pairs": [p.to_dict() for p in self.pairs],
            "reference": None if self.reference is None else self.reference.to_dict(),
            "intervals": self.intervals, "significance": self.significance,
        }


def _label_runs(runs: list[ComparedRun]) -> None:
    """`model · method[/preset]`, with the directory name added where two would look alike.

    The preset is part of the label only where the runs' presets differ.
    """
    base = []
    presets_differ = len({r.summary.preset for r in runs}) > 1
    for r in runs:
        preset = r.summary.preset if presets_differ else None
        base.append(f"{r.summary.model.name} · {r.method}" + (f"/{preset}" if preset else ""))
    for r, b in zip(runs, base, strict=True):
        r.label = b if base.count(b) == 1 else f"{b} [{r.dir.name}]"
    seen: dict[str, int] = {}
    for r in runs:  # still equal (same directory name twice): number them
        seen[r.label] = seen.get(r.label, 0) + 1
        if seen[r.label] > 1:
            r.label = f"{r.label} #{seen[r.label]}"


def config_warnings(runs: list[ComparedRun]) -> list[str]:
    """What makes the runs' numbers not like for like."""
    if len(runs) < 2:
        return []
    out = []
    checks = [("benchmark", lambda r: r.summary.benchmark),
              ("filters", lambda r: json.dumps(r.summary.filters, sort_keys=True)),
              ("method", lambda r: r.summary.method),
              ("end-of-turn scoring", lambda r: r.summary.include_end_of_turn),
              ("preset", lambda r: r.summary.preset),
              ("CLIP model", lambda r: r.clip)]
    for what, get in checks:
        values = {r.label: get(r) for r in runs}
        if len(set(map(str, values.values()))) > 1:
            listed = "; ".join(f"{k}: {v if v is not None else 'none'}" for k, v in values.items())
            out.append(f"runs differ in {what} ({listed})")
    if len({r.selected for r in runs}) > 1:
        out.append("runs selected different questions: paired tests use the questions both "
                   "runs of a pair answered")
    return out


def _pair_counts(a: dict, b: dict, ids) -> stats.PairCounts:
    ac = [a[q][1] for q in ids]
    bc = [b[q][1] for q in ids]
    return stats.PairCounts(
        n=len(ids), a_only=sum(x and not y for x, y in zip(ac, bc, strict=True)),
        b_only=sum(y and not x for x, y in zip(ac, bc, strict=True)),
        a_correct=sum(ac), b_correct=sum(bc))


def _withheld(label: str, a: ComparedRun, b: ComparedRun) -> str | None:
    """Why group `label` gets no paired test (n/a or partial in either run), or None."""
    ga, gb = a.summary.groups.get(label), b.summary.groups.get(label)
    status = {"A": ga.status if ga else NOT_AVAILABLE, "B": gb.status if gb else NOT_AVAILABLE}
    if all(s == NOT_AVAILABLE for s in status.values()):
        return "n/a in both runs"
    why = []
    for side, g in (("A", ga), ("B", gb)):
        if status[side] != COMPLETE:
            why.append(f"{status[side]} in {side}" + (f" ({g.why()})" if g and g.why() else ""))
    return "; ".join(why) or None


def paired(a: ComparedRun, b: ComparedRun) -> Pair:
    """Paired tests of A against B on the questions both answered, per dimension and group."""
    if a.summary.benchmark != b.summary.benchmark:
        return Pair(a.label, b.label, 0, note="different benchmarks: no paired test")
    ac, bc = a.correct, b.correct
    shared = sorted(set(ac) & set(bc))
    if not shared:
        return Pair(a.label, b.label, 0, note="no question answered by both runs: no paired test")
    by_dim: dict[int, list[str]] = {}
    for q in shared:
        by_dim.setdefault(ac[q][0], []).append(q)
    counts = {d: _pair_counts(ac, bc, ids) for d, ids in sorted(by_dim.items())}
    dims = {d: PairedTest.of(stats.paired_proportion(c), c) for d, c in counts.items()}
    draws = {d: stats.paired_diff_draws(c, d) for d, c in counts.items() if c.n}
    groups = {}
    bench = B.find(a.summary.benchmark)
    for group in bench.groups if bench else ():
        label, group_dims = group.label, group.dims
        strata = {d: counts[d] for d in group_dims if d in counts}
        withheld = _withheld(label, a, b)
        if withheld or not strata:
            groups[label] = PairedGroup(label, len(strata), withheld=withheld or "no shared answers")
            continue
        pooled = stats.PairCounts(*(sum(getattr(c, f) for c in strata.values())
                                    for f in ("n", "a_only", "b_only", "a_correct", "b_correct")))
        groups[label] = PairedGroup(
            label, len(strata),
            task=PairedTest.of(stats.paired_bootstrap_task(strata, draws=draws)),
            all=PairedTest.of(stats.paired_proportion(pooled), pooled))
    return Pair(a.label, b.label, len(shared), dims, groups)


# -- published references ----------------------------------------------------------------------

def references() -> dict[str, dict]:
    return reference_rows.load()


def against_reference(run: ComparedRun, name: str, ref: dict) -> ReferenceRun:
    """The run's numbers beside the published row: difference and interval only where the
    run's group is complete; method and preset matched."""
    s = run.summary
    which = ref["average"]  # "task" or "all"
    rows = []
    for group, published in ref["scores"].items():
        g = s.groups.get(group)
        if g is None or not g.available:
            rows.append(ReferenceRow(group, published, None, None, status=NOT_AVAILABLE,
                                     why="n/a: " + (g.why() if g and g.why() else "no answers")))
            continue
        value = g.task if which == "task" else g.all
        ci = g.task_ci95 if which == "task" else g.all_ci95
        if g.status != COMPLETE:
            rows.append(ReferenceRow(group, published, value, ci, status=g.status,
                                     why=f"partial: {g.why()}"))
            continue
        rows.append(ReferenceRow(group, published, value, ci, status=COMPLETE,
                                 diff=None if value is None else round(value - published, 4),
                                 within_ci=None if not ci else ci[0] <= published <= ci[1]))
    warnings = []
    if s.benchmark != ref["benchmark"]:
        warnings.append(f"{run.label}: the run is {s.benchmark}, {name} is {ref['benchmark']}")
    return ReferenceRun(run.label, name, ref, tuple(rows),
                        LEADERBOARD_METHOD.get(s.method, s.method), s.preset, tuple(warnings))


# -- the comparison -----------------------------------------------------------------------------

def _loaded(run: RunResult | str | Path) -> RunResult:
    if isinstance(run, RunResult):
        return run
    try:
        return load_run(run)
    except RunLoadError as exc:
        raise CompareError(str(exc)) from None


def compare(runs: Iterable[RunResult | str | Path], reference: str | None = None) -> Comparison:
    """Runs (RunResults or run folders) side by side; `reference` names a published row
    (evaluator/data/references.json). Raises CompareError on bad input."""
    refs = references()
    if reference is not None and reference not in refs:
        raise CompareError(f"unknown reference {reference!r}; known: {', '.join(sorted(refs))}")
    compared = []
    for run in runs:
        result = _loaded(run)
        try:
            questions = result.questions(evidence=_generation_dims(result.summary.benchmark))
        except RunLoadError as exc:
            raise CompareError(str(exc)) from None
        compared.append(ComparedRun(result, questions))
    if not compared:
        raise CompareError("nothing to compare: give at least one run")
    _label_runs(compared)
    first = compared[0].summary
    names: dict[int, str] = {}
    for r in compared:
        for d, x in r.summary.dimensions.items():
            names.setdefault(d, x.name)
    warnings = config_warnings(compared)
    ref = None
    if reference is not None:
        rows = tuple(against_reference(r, reference, refs[reference]) for r in compared)
        ref = ReferenceComparison(reference, refs[reference], rows)
        warnings += [w for row in rows for w in row.warnings]
    return Comparison(
        benchmark=first.benchmark, headline=tuple(first.headline()),
        dimensions=tuple(sorted(names.items())), runs=tuple(compared),
        warnings=tuple(warnings),
        pairs=tuple(paired(a, b) for a, b in itertools.combinations(compared, 2)),
        reference=ref, intervals=first.intervals)
