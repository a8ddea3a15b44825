"""The parts of a Comparison: paired tests, published-reference rows, L3 evidence.

Plain frozen values; `to_dict()` gives the shape `compare --json` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluator.results import stats


def _p(p: float) -> float:
    """A p-value for JSON: six significant digits (rounding to decimals would print 0)."""
    return float(f"{p:.6g}")


@dataclass(frozen=True)
class PairedTest:
    """One paired test of A against B: the difference in points, its p-value and, for a
    proportion (McNemar), the questions both answered and each run's accuracy on them."""

    diff: float
    p: float
    significant: bool
    test: str  # "mcnemar-exact" or "paired-bootstrap"
    ci95: tuple[float, float] | None = None  # of the difference (bootstrap)
    n: int | None = None
    a: float | None = None
    b: float | None = None

    @classmethod
    def of(cls, r: stats.PairedResult | None, c: stats.PairCounts | None = None
           ) -> PairedTest | None:
        if r is None:
            return None
        extra = {}
        if c is not None:
            extra = {"n": c.n, "a": round(100 * c.a_correct / c.n, 4) if c.n else None,
                     "b": round(100 * c.b_correct / c.n, 4) if c.n else None}
        return cls(round(r.diff, 4), _p(r.p), r.significant, r.method,
                   None if r.ci95 is None else (round(r.ci95[0], 4), round(r.ci95[1], 4)),
                   **extra)

    def to_dict(self) -> dict:
        out = {"diff": self.diff, "p": self.p, "significant": self.significant, "test": self.test}
        if self.ci95 is not None:
            out["ci95"] = list(self.ci95)
        if self.n is not None:
            out.update(n=self.n, a=self.a, b=self.b)
        return out


@dataclass(frozen=True)
class PairedGroup:
    """A group's paired tests, or why there are none (`withheld`: n/a or partial in a run)."""

    name: str
    dims: int  # dimensions with shared answers
    task: PairedTest | None = None  # task average (paired bootstrap)
    all: PairedTest | None = None  # question-weighted (McNemar)
    withheld: str | None = None

    def to_dict(self) -> dict:
        out = {"task": None if self.task is None else self.task.to_dict(),
               "all": None if self.all is None else self.all.to_dict(), "dims": self.dims}
        if self.withheld:
            out["withheld"] = self.withheld
        return out


@dataclass(frozen=True)
class Pair:
    a: str  # run labels
    b: str
    shared: int  # questions both answered
    dimensions: dict[int, PairedTest] = field(default_factory=dict)
    groups: dict[str, PairedGroup] = field(default_factory=dict)
    note: str | None = None  # why there is no test at all

    def to_dict(self) -> dict:
        out = {"a": self.a, "b": self.b, "shared": self.shared,
               "dimensions": {str(d): t.to_dict() for d, t in self.dimensions.items()},
               "groups": {k: g.to_dict() for k, g in self.groups.items()}}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class ReferenceRow:
    """One group beside its published number. `diff` and `within_ci` are None unless the
    run's group is complete; `why` says what keeps it from comparison."""

    group: str
    published: float
    run: float | None
    ci95: tuple[float, float] | None
    status: str  # the run's group: "complete", "partial" or "n/a"
    diff: float | None = None
    within_ci: bool | None = None
    why: str | None = None

    def to_dict(self) -> dict:
        return {"group": self.group, "published": self.published, "run": self.run,
                "ci95": None if self.ci95 is None else list(self.ci95), "diff": self.diff,
                "within_ci": self.within_ci, "status": self.status, "why": self.why}


@dataclass(frozen=True)
class ReferenceRun:
    """One run beside a published row: its groups, and whether method and preset match."""

    run: str  # the run's label
    reference: str
    published: dict  # the row as in references.json
    rows: tuple[ReferenceRow, ...]
    method: str  # the run's method as the leaderboard names it
    preset: str | None
    warnings: tuple[str, ...] = ()

    @property
    def method_match(self) -> bool:
        return self.method == self.published["method"]

    @property
    def preset_match(self) -> bool | None:
        """None when the published row names no preset."""
        want = self.published.get("preset")
        return None if want is None else self.preset == want

    def to_dict(self) -> dict:
        ref = self.published
        return {"run": self.run, "reference": self.reference, "model": ref["model"],
                "source": ref["source"], "note": ref.get("note"), "average": ref["average"],
                "rows": [r.to_dict() for r in self.rows],
                "method": {"published": ref["method"], "run": self.method,
                           "match": self.method_match},
                "preset": {"published": ref.get("preset"), "run": self.preset,
                           "match": self.preset_match},
                "warnings": list(self.warnings)}


@dataclass(frozen=True)
class ReferenceComparison:
    name: str
    published: dict  # model, benchmark, method, preset, average, scores, source, note
    runs: tuple[ReferenceRun, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, **self.published, "runs": [r.to_dict() for r in self.runs]}


@dataclass(frozen=True)
class L3Answer:
    """An answered L3 question with its stored record (generated image, CLIP similarities)."""

    dimension: int
    prediction: str | None
    answer: str
    evidence: dict | None
