"""Accuracy per subtype, beside the dimensions (SEED-Bench-2-Plus: question_image_subtype).

A benchmark whose definition names a subtype field reports, for each
(dimension, subtype) pair seen among the selected questions, the same counts
a dimension gets: answered, correct, errors, unparsed, its accuracy over the
answered questions and the Wilson 95% interval. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from evaluator.data.benchmarks import Benchmark
from evaluator.results import stats

NONE = "(no subtype)"


def breakdown(bench: Benchmark, rows: Iterable, subtypes: Mapping[str, str]) -> list[dict]:
    """One record per (dimension, subtype), in dimension then subtype order. `rows`: the
    store's rows (question_id, dimension, status, prediction, answer, unsupported)."""
    counts: dict[tuple[int, str], dict] = {}
    for r in rows:
        key = (r.dimension, subtypes.get(r.question_id) or NONE)
        c = counts.setdefault(key, {"selected": 0, "total": 0, "correct": 0, "errors": 0,
                                    "unparsed": 0})
        c["selected"] += 1
        if r.unsupported:
            continue
        if r.status == "ok":
            c["total"] += 1
            c["unparsed"] += int(r.prediction is None)
            c["correct"] += int(r.prediction is not None and r.prediction == r.answer)
        elif r.status == "error":
            c["errors"] += 1
    out = []
    for (dim, subtype), c in sorted(counts.items()):
        ci = stats.wilson(c["correct"], c["total"])
        out.append({"dimension": dim, "category": bench.dimensions.get(dim, f"dimension {dim}"),
                    "subtype": subtype, **c,
                    "accuracy": round(100.0 * c["correct"] / c["total"], 4) if c["total"] else None,
                    "n": c["total"], "ci95": None if ci is None else [round(x, 4) for x in ci],
                    "ci_method": stats.WILSON})
    return out
