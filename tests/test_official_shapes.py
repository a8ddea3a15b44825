"""The benchmark's own file shapes, end to end: the DATASET.md example questions of
SEED-Bench-1 and SEED-Bench-2 (extensionless CC3M ids, lists of frames, `<img>`
interleaving, L3 option images, raw-video ids with the shipped 8-frame folders keyed
by question id), run through the evaluator (its library API) against a synthetic model server, and
every score recomputed here from submission.jsonl and the spec's definitions.
"""

import json

import pytest

from evaluator import cli
from evaluator.data import benchmarks as B
from evaluator.data import dataset
from tests.evaluator_runs import run
from tests.official_files import LETTERS, SUBPART, V1_QUESTION_TYPE, V2_QUESTION_TYPE, write_v1, write_v2
from tests.procs import model_server


@pytest.fixture(scope="module")
def server():
    with model_server(["--backend", "synthetic", "--model", "m", "--log-level", "WARNING"]) \
            as (target, _):
        yield target


def test_dimension_names_are_the_files_question_type_maps():
    assert {n: d for d, n in B.SEED_BENCH_2.dimensions.items()} == V2_QUESTION_TYPE
    assert {n: d for d, n in B.SEED_BENCH_1.dimensions.items()} == V1_QUESTION_TYPE
    assert [B.SEED_BENCH_2.level_of(d) for d in (1, 22, 23, 24, 25, 27)] == ["L1", "L1", "L2", "L2", "L3",
                                                                 "L3"]
    assert {B.SEED_BENCH_2.subpart_of(d) for d in range(1, 28)} == set(SUBPART.values())


def test_official_files_load_whole_and_filter_cumulatively(tmp_path):
    ann, roots = write_v2(tmp_path / "v2")
    ds = dataset.load(ann, roots)
    assert ds.benchmark == B.SEED_BENCH_2.name and not ds.invalid and not ds.warnings
    n = {d: 1 + d % 3 for d in range(1, 28)}

    def count(**kw):
        return len(dataset.load(ann, roots, dataset.Filters(**kw)).questions)

    assert count() == sum(n.values())
    assert count(level="L1") == sum(n[d] for d in range(1, 23))
    assert count(level="L2") == sum(n[d] for d in range(1, 25))
    assert count(level="L3") == sum(n.values())
    assert count(version="v1") == sum(n[d] for d in range(1, 10))
    assert count(version="v2") == sum(n.values())
    assert count(subpart="Image Generation") == n[25] + n[26]
    assert count(subpart="Image & Text Generation") == n[27]
    assert count(level="L2", version="v1") == sum(n[d] for d in range(1, 10))

    v1, v1_roots = write_v1(tmp_path / "v1")
    ds1 = dataset.load(v1, v1_roots)
    assert ds1.benchmark == B.SEED_BENCH_1.name and not ds1.invalid and not ds1.warnings
    for q in ds1.questions:
        if q.dimension >= 10:  # the folder named by the QUESTION id, not the video's name
            assert [p.name for p in q.images] == [f"{i}.png" for i in range(1, 9)]
            assert q.images[0].parent.name == q.question_id


def test_a_question_type_map_that_differs_is_reported(tmp_path):
    ann, roots = write_v2(tmp_path)
    doc = json.loads(ann.read_text())
    qt = doc["question_type"]
    qt["Visual Mathmatics"] = qt.pop("Visual Mathematics")
    qt["Video Captioning"] = 28
    ann.write_text(json.dumps(doc))
    ds = dataset.load(ann, roots)
    assert len(ds.questions) == len(doc["questions"])  # the ids decide: nothing is dropped
    [warning] = ds.warnings
    assert "question_type" in warning
    assert "dimension 16 is named 'Visual Mathmatics' there, 'Visual Mathematics' here" in warning
    assert "'Video Captioning' has id 28, not a SEED-Bench-2 dimension" in warning


def scores_from_submission(ann, out) -> tuple[dict, dict]:
    """(per-dimension [correct, answered], the summary) recomputed from the written files."""
    answers = {q["question_id"]: q for q in json.loads(ann.read_text())["questions"]}
    per_dim: dict[int, list[int]] = {}
    for line in (out / "submission.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert list(row) == ["question_id", "prediction"] and row["prediction"] in LETTERS
        q = answers[row["question_id"]]
        c = per_dim.setdefault(q["question_type_id"], [0, 0])
        c[0] += row["prediction"] == q["answer"]
        c[1] += 1
    return per_dim, json.loads((out / "summary.json").read_text())


def task_and_weighted(per_dim, dims):
    have = [d for d in dims if d in per_dim]
    task = sum(100 * per_dim[d][0] / per_dim[d][1] for d in have) / len(have)
    weighted = 100 * sum(per_dim[d][0] for d in have) / sum(per_dim[d][1] for d in have)
    return pytest.approx(task, abs=1e-3), pytest.approx(weighted, abs=1e-3)


def test_seed_bench_2_scores_are_the_spec_averages(tmp_path, server, capsys):
    ann, roots = write_v2(tmp_path / "data")
    out = tmp_path / "out"
    result = run(ann, roots, server, out, level="L3")
    per_dim, s = scores_from_submission(ann, out)
    assert s == result.summary.to_dict()
    assert sorted(per_dim) == list(range(1, 25))  # no image generation: dims 25-27 not run
    assert s["benchmark"] == "SEED-Bench-2"
    for d, (correct, total) in per_dim.items():
        assert s["dimensions"][str(d)]["name"] == B.SEED_BENCH_2.dimensions[d]
        assert (s["dimensions"][str(d)]["correct"], s["dimensions"][str(d)]["total"]) == \
            (correct, total)
    groups = {"L1": range(1, 23), "L2": range(1, 25), "P1": range(1, 23), "P2": (23, 24),
              "Single": range(1, 17), "Multi": (17, 18), "Video": range(19, 23)}
    for label, dims in groups.items():
        task, weighted = task_and_weighted(per_dim, dims)
        assert s["averages"][label]["task"] == task, label
        assert s["averages"][label]["all"] == weighted, label
    assert s["averages"]["L1"]["task"] != s["averages"]["L1"]["all"]  # the two really differ
    assert s["averages"]["L3"] is None and s["averages"]["P3"] is None  # n/a, never 0
    # The leaderboard view counts the 3 unrun L3 dims' questions nowhere (L3 stays n/a) but
    # every selected question of dims 1-24 (all answered here): the same numbers.
    assert s["all_questions"]["averages"]["L2"]["all"] == s["averages"]["L2"]["all"]
    assert s["all_questions"]["averages"]["L3"] is None
    # `seedbench score` on the run's own submission.jsonl gives the run's numbers.
    capsys.readouterr()  # the run's tables
    assert cli.main(["score", "--annotations", str(ann), "--predictions",
                     str(out / "submission.jsonl"), "--level", "L3", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["dimensions"] == s["dimensions"] and scored["averages"] == s["averages"]


def test_seed_bench_1_image_video_all_are_question_weighted(tmp_path, server):
    ann, roots = write_v1(tmp_path / "data")
    out = tmp_path / "out"
    run(ann, roots, server, out)
    per_dim, s = scores_from_submission(ann, out)
    assert sorted(per_dim) == list(range(1, 13)) and s["benchmark"] == "SEED-Bench-1"
    for label, dims in (("Image", range(1, 10)), ("Video", range(10, 13)),
                        ("All", range(1, 13))):
        _, weighted = task_and_weighted(per_dim, dims)
        assert s["averages"][label]["all"] == weighted, label
    assert json.loads((out / "run.json").read_text())["video_sources"] == {
        str(d): f"8-frame folders, frames={roots['frames']}" for d in (10, 11, 12)}

