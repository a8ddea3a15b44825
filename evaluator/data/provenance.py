"""What a result was computed on, recorded with every result (summary.json, run.json, the store).

SEED-Bench-1's `SEED-Bench.json` changed twice under the same name and without
a version field (a re-screening of the video questions on 2023-11-30: 19,242 ->
about 17,990 questions; a hub edit on 2024-05-17 around the names of dims 3/4).
So the file itself says which version a result came from: its sha256, how many
questions it holds and its own `question_type` map, with every warning the
loader raised about it (e.g. a map whose names disagree with the paper's).
`recognise` names the version those facts point to, or None. A parquet snapshot
is recorded by its shards (names, sizes, rows, footer sha256) under `source`, and
its sha256 is that of its shard list (evaluator.data.parquet_snapshot).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from evaluator.data import benchmarks as B

V1_ORIGINAL = 19_242  # before the 2023-11-30 re-screening of the video questions
V1_RESCREENED = range(17_500, V1_ORIGINAL)  # "about 17,990" after it (the exact count varies)
V2_PUBLISHED = 24_371  # SEED-Bench_v2_level1_2_3.json
_DIM3, _DIM4 = B.SEED_BENCH_1.dimensions[3], B.SEED_BENCH_1.dimensions[4]  # the paper's order


def _dims_3_4(question_type: object) -> str:
    """How the file's own map names dims 3 and 4 (the names that moved in 2024)."""
    if not isinstance(question_type, dict):
        return "no question_type map"
    by_id = {v: k for k, v in question_type.items() if isinstance(v, int)}
    if by_id.get(3) == _DIM3 and by_id.get(4) == _DIM4:
        return f"question_type names dims 3/4 as the paper does (3 {_DIM3}, 4 {_DIM4})"
    if by_id.get(3) == _DIM4 and by_id.get(4) == _DIM3:
        return (f"question_type names dims 3/4 the other way round (3 {_DIM4}, 4 {_DIM3}), "
                "as the benchmark's DATASET.md did until 2023-08-02")
    return "question_type names dims 3/4 neither way"


def recognise(benchmark: str, questions: int, question_type: object) -> str | None:
    """The published version these facts match, or None when they match none."""
    if benchmark == B.SEED_BENCH_1.name and questions == V1_ORIGINAL:
        return (f"SEED-Bench-1 original ({V1_ORIGINAL:,} questions, before the 2023-11-30 "
                f"re-screening); {_dims_3_4(question_type)}")
    if benchmark == B.SEED_BENCH_1.name and questions in V1_RESCREENED:
        return (f"SEED-Bench-1 re-screened (2023-11-30 or later, {questions:,} questions); "
                f"{_dims_3_4(question_type)}")
    if benchmark == B.SEED_BENCH_2.name and questions == V2_PUBLISHED:
        return f"SEED-Bench-2 levels 1-3 ({V2_PUBLISHED:,} questions)"
    return None


def annotations(ds) -> dict:
    """The annotation file's facts, from an evaluator.data.dataset.Dataset as loaded."""
    question_type = ds.question_type if isinstance(ds.question_type, dict) else None
    return {"path": ds.file, "sha256": ds.sha256, "questions": ds.file_questions,
            "benchmark": ds.benchmark,
            "version": recognise(ds.benchmark, ds.file_questions, ds.question_type),
            "question_type": question_type, "warnings": list(ds.warnings), "source": ds.source}


def record(ds, media_roots: Mapping[str, Path], model: dict, method: str, preset: str,
           clip: dict | None) -> dict:
    """The provenance of a run's results: file, media roots, model, method, preset, CLIP."""
    return {"annotations": annotations(ds),
            "media_roots": {key: str(path) for key, path in sorted(media_roots.items())},
            "model": {k: model.get(k) for k in ("name", "backend", "fingerprint")},
            "method": method, "preset": preset, "clip": clip}
