"""SEED-Bench-2-Plus end to end: its JSON with text_rich/ images and its parquet copy, over gRPC.

The sample data is written by `seedbench sample-data --format v2plus` (text-rich
800x800 PNGs in the published layout), a hub-style parquet copy of it is built
here (the JSON's fields plus one image struct), and a scripted model server
answers. Scores are checked against a recount from the predictions and the
answer key, made in the test itself.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from evaluator import cli
from evaluator.data import benchmarks, dataset
from evaluator.data.benchmarks import SEED_BENCH_2_PLUS as PLUS
from tests.hub_parquet import plus_table, write_shards
from tests.procs import model_server

QUIET = ["--log-level", "WARNING"]
CATEGORIES = {"chart": "Chart", "map": "Map", "web": "Web"}


@pytest.fixture(scope="module")
def plus(tmp_path_factory):
    """(data folder, its JSON, a two-shard parquet copy, the questions)."""
    root = tmp_path_factory.mktemp("plus")
    assert cli.main(["sample-data", "--format", "v2plus", "--out", str(root / "data"),
                     "--per-dim", "6", "--seed", "4"]) == 0
    ann = root / "data" / PLUS.file_name
    rows = json.loads(ann.read_text())["questions"]
    images = [(root / "data" / q["data_id"]).read_bytes() for q in rows]
    write_shards(plus_table(rows, images), root / "snapshot", shards=2, row_group_size=5)
    return root / "data", ann, root / "snapshot", rows


@pytest.fixture(scope="module")
def server(plus, tmp_path_factory):
    """Right on every other question (by its text), option A otherwise; B when generating."""
    _, _, _, rows = plus
    d = tmp_path_factory.mktemp("scripted-plus")
    right = {q["question"]: "ABCD".index(q["answer"]) for q in rows[::2]}
    (d / "script.json").write_text(json.dumps({
        "name": "scripted-plus", "generate_image": False, "score": right, "default_score": 0,
        "default_generate": "The answer is B.", "log": "calls.jsonl"}))
    with model_server(["--backend", "scripted", "--model", str(d / "script.json"), *QUIET]) as (t, _):
        yield t


def run(target: str, annotations: Path, out: Path, *extra: str) -> dict:
    assert cli.main(["run", "--annotations", str(annotations), "--model", target, "--out", str(out),
                     "--connect-timeout-s", "5", *extra]) == 0
    return json.loads((out / "summary.json").read_text())


def predictions(out: Path) -> dict[str, str]:
    lines = (out / "submission.jsonl").read_text().splitlines()
    return {x["question_id"]: x["prediction"] for x in map(json.loads, lines)}


def recount(rows: list[dict], preds: dict[str, str], key) -> dict:
    """Accuracy (percent, 4 places) per key(question), from predictions and the answer key."""
    right, total = Counter(), Counter()
    for q in rows:
        total[key(q)] += 1
        right[key(q)] += preds.get(q["question_id"]) == q["answer"]
    return {k: round(100.0 * right[k] / total[k], 4) for k in total}


def test_sample_data_is_the_published_layout(plus):
    data, ann, _, rows = plus
    assert len(rows) == 18 and Counter(q["question_image_type"] for q in rows) == {
        "chart": 6, "map": 6, "web": 6}
    for q in rows:
        assert set(q) == PLUS.fields and q["data_id"].startswith("text_rich/")
        with Image.open(data / q["data_id"]) as im:
            assert im.size == (800, 800) and im.format == "PNG"
    again = data.parent / "again"
    assert cli.main(["sample-data", "--format", "v2plus", "--out", str(again), "--per-dim", "6",
                     "--seed", "4"]) == 0
    assert (again / PLUS.file_name).read_bytes() == ann.read_bytes()
    assert (again / "text_rich" / "7.png").read_bytes() == (data / "text_rich" / "7.png").read_bytes()


def test_json_and_parquet_give_the_same_submission_and_recounted_scores(plus, server, tmp_path):
    data, ann, snapshot, rows = plus
    from_json = run(server, ann, tmp_path / "json", "--media-root", str(data))
    from_parquet = run(server, snapshot, tmp_path / "parquet")
    assert ((tmp_path / "json" / "submission.jsonl").read_bytes()
            == (tmp_path / "parquet" / "submission.jsonl").read_bytes())
    preds = predictions(tmp_path / "json")
    assert len(preds) == len(rows)
    per_category = recount(rows, preds, lambda q: CATEGORIES[q["question_image_type"]])
    assert 0 < min(per_category.values()) and max(per_category.values()) < 100
    for s in (from_json, from_parquet):
        assert s["benchmark"] == "SEED-Bench-2-Plus"
        assert list(s["averages"]) == ["Chart", "Map", "Web", "All"]
        for dim, name in PLUS.dimensions.items():
            assert s["dimensions"][str(dim)]["name"] == name
            assert s["dimensions"][str(dim)]["accuracy"] == per_category[name]
            assert s["averages"][name]["all"] == per_category[name]
            assert s["dimensions"][str(dim)]["ci95"] and s["averages"][name]["all_ci95"]
        assert s["averages"]["All"]["all"] == recount(rows, preds, lambda q: "all")["all"]
        subtypes = recount(rows, preds, lambda q: (CATEGORIES[q["question_image_type"]],
                                                   q["question_image_subtype"]))
        assert {(x["category"], x["subtype"]): x["accuracy"] for x in s["subtypes"]} == subtypes
        assert all(x["ci95"][0] <= x["accuracy"] <= x["ci95"][1] for x in s["subtypes"])
    assert from_parquet["provenance"]["annotations"]["source"]["format"] == "parquet"
    assert from_json["provenance"]["annotations"]["source"] == {"format": "json", "path": str(ann)}


def test_generate_and_letter_methods(plus, server, tmp_path, capsys):
    data, ann, _, rows = plus
    s = run(server, ann, tmp_path / "generate", "--media-root", str(data), "--method", "generate")
    assert set(predictions(tmp_path / "generate").values()) == {"B"}
    assert s["averages"]["All"]["all"] == recount(rows, {q["question_id"]: "B" for q in rows},
                                                  lambda q: "all")["all"]
    s = run(server, ann, tmp_path / "letter", "--media-root", str(data), "--method", "letter",
            "--preset", "internlm-xcomposer")
    assert s["counts"]["answered"] == len(rows) and s["preset"]["name"] == "internlm-xcomposer"
    capsys.readouterr()
    run(server, ann, tmp_path / "raw", "--media-root", str(data), "--preset", "seed1-instructblip")
    err = " ".join(capsys.readouterr().err.split())
    assert "preset seed1-instructblip follows" in err and "not written for SEED-Bench-2-Plus" in err


def test_score_report_and_compare_work_from_the_definition(plus, server, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # tables wide enough to keep each subtype on one line
    data, ann, snapshot, rows = plus
    s = run(server, ann, tmp_path / "a", "--media-root", str(data))
    run(server, snapshot, tmp_path / "b", "--method", "generate")
    capsys.readouterr()
    assert cli.main(["score", "--annotations", str(snapshot), "--predictions",
                     str(tmp_path / "a" / "submission.jsonl"), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["dimensions"] == s["dimensions"] and scored["subtypes"] == s["subtypes"]
    assert {k: v["all"] for k, v in scored["averages"].items()} == {
        k: v["all"] for k, v in s["averages"].items()}
    assert cli.main(["report", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "Accuracy per subtype" in out and "bar chart" in out and "L1" not in out
    assert cli.main(["report", str(tmp_path / "a"), "--format", "csv"]) == 0
    rows = [line.split(",") for line in capsys.readouterr().out.splitlines()]
    assert {r[1]: r[4] for r in rows if r[0] == "subtype"} == {
        f"{x['category']}/{x['subtype']}": str(x["accuracy"]) for x in s["subtypes"]}
    page = tmp_path / "cmp.html"
    assert cli.main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--html", str(page),
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["headline"] == ["Chart", "Map", "Web", "All"]
    assert set(result["pairs"][0]["groups"]) == {"Chart", "Map", "Web", "All"}
    html = page.read_text()
    assert 'id="subtypes"' in html and "news page" in html and "Web task" in html


def test_detection_and_the_benchmark_override(tmp_path, capsys):
    """A SEED-Bench-1 copy whose questions carry a `version` field reads as SEED-Bench-2
    (its questions then lack data_source); --benchmark v1 reads it as SEED-Bench-1."""
    qs = [{"question_id": str(k), "question": "Which?", "choice_a": "a", "choice_b": "b",
           "choice_c": "c", "choice_d": "d", "answer": "B", "question_type_id": 1 + k,
           "data_id": f"{k}.jpg", "version": "v1"} for k in range(4)]
    ann = tmp_path / "SEED-Bench.json"
    ann.write_text(json.dumps({"questions": qs}))
    detected = dataset.parse(ann)
    assert detected.benchmark == "SEED-Bench-2" and detected.rejected == 4
    assert {x.field for x in detected.invalid} == {"data_source"}
    forced = dataset.parse(ann, benchmark="v1")
    assert forced.benchmark == "SEED-Bench-1" and not forced.invalid and len(forced.questions) == 4
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"question_id": str(k), "prediction": "B"}) + "\n"
                             for k in range(2)))
    assert cli.main(["score", "--annotations", str(ann), "--predictions", str(preds),
                     "--benchmark", "SEED-Bench-1", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["benchmark"] == "SEED-Bench-1" and s["averages"]["Image"]["all"] == 100.0
    assert cli.main(["run", "--annotations", str(ann), "--model", "127.0.0.1:1", "--out",
                     str(tmp_path / "o"), "--benchmark", "v3"]) == 2
    err = capsys.readouterr().err
    assert "--benchmark: unknown benchmark 'v3'" in err and "Traceback" not in err
    plus_q = {"question_id": "0", "question": "Q?", "choice_A": "a", "choice_B": "b",
              "choice_C": "c", "choice_D": "d", "answer": "A", "data_id": "text_rich/1.png"}
    assert benchmarks.classify(plus_q) is PLUS  # capital choice keys, no question_type_id
    assert benchmarks.classify({**plus_q, "question_type_id": 3}) is benchmarks.SEED_BENCH_1


def test_presets_name_the_benchmarks_they_apply_to(capsys):
    assert cli.main(["presets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert "SEED-Bench-2-Plus" in listed["chat-mean"]["benchmarks"]
    assert listed["seed1-instructblip"]["benchmarks"] == ["SEED-Bench-1"]
