"""What every result carries: the provenance of its annotation file, media and model, and
samples.jsonl, one line per question, checked against the results store."""

import hashlib
import json

import pytest

from evaluator import cli
from evaluator.data import benchmarks as B
from evaluator.data import provenance
from evaluator.results.runkey import RunKey
from evaluator.results.store import Store
from tests.evaluator_runs import run as evaluate_run
from tests.evaluator_runs import write_sample
from tests.procs import model_server

QUIET = ["--log-level", "WARNING"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("data"), per_dim=2)


@pytest.fixture(scope="module")
def one_image_model():
    """Synthetic model taking one image per prompt: dimension 17 (two images) errors."""
    with model_server(["--backend", "synthetic", "--model", "m1", "--backend-arg",
                       "max_images=1", *QUIET]) as (target, _):
        yield target


def test_results_record_the_annotation_file_and_its_warnings(data, one_image_model, tmp_path,
                                                             capsys):
    ann, roots = data
    doc = json.loads(ann.read_text())
    names = {v: k for k, v in doc["question_type"].items()}
    # The map of the file names dims 3 and 4 the other way round: the ids decide, it is warned.
    doc["question_type"] = {(names[4] if d == 3 else names[3] if d == 4 else n): d
                            for n, d in doc["question_type"].items()}
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert not evaluate_run(swapped, roots, one_image_model, out, dimensions="1,3").all_failed
    summary = json.loads((out / "summary.json").read_text())
    run = json.loads((out / "run.json").read_text())
    p = summary["provenance"]
    a = p["annotations"]
    assert a["path"] == str(swapped) and a["benchmark"] == B.SEED_BENCH_2.name
    assert a["sha256"] == hashlib.sha256(swapped.read_bytes()).hexdigest()
    assert a["questions"] == len(doc["questions"]) == 27 * 2
    assert a["version"] is None  # 54 questions: no published version
    assert a["question_type"] == doc["question_type"]
    (warning,) = a["warnings"]
    assert "question_type map differs" in warning and "dimension 3 is named 'Instance Location'" in warning
    assert p["media_roots"] == {"SEED-Bench v2": str(ann.parent / "seed_bench_v2"),
                                "cc3m": str(ann.parent / "cc3m")}
    assert p["model"]["name"] == "m1" and p["model"]["backend"] == "synthetic"
    assert p["model"]["fingerprint"] == summary["model"]["fingerprint"]
    assert (p["method"], p["preset"], p["clip"]) == ("ppl", "chat-mean", None)
    assert run["provenance"] == p
    store = Store(out)
    try:
        assert store.meta("run")["provenance"] == p
    finally:
        store.close()
    capsys.readouterr()
    assert cli.main(["report", str(out)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    packed = "".join(shown.split())  # a long path wraps inside its column
    assert str(swapped) in packed and a["sha256"] in packed and "annotations.questions" in shown
    assert " ".join(warning.split())[:60] in shown
    # A predictions file scored without a model records the same file facts.
    assert cli.main(["score", "--annotations", str(swapped), "--predictions",
                     str(out / "submission.jsonl"), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)["provenance"]["annotations"]
    assert scored == a


def test_known_versions_are_recognised_by_count_and_map():
    paper = {n: d for d, n in B.SEED_BENCH_1.dimensions.items()}
    other = {**paper, B.SEED_BENCH_1.dimensions[3]: 4, B.SEED_BENCH_1.dimensions[4]: 3}
    original = provenance.recognise(B.SEED_BENCH_1.name, 19_242, paper)
    assert original.startswith("SEED-Bench-1 original") and "as the paper does" in original
    rescreened = provenance.recognise(B.SEED_BENCH_1.name, 17_990, other)
    assert rescreened.startswith("SEED-Bench-1 re-screened") and "other way round" in rescreened
    assert "no question_type map" in provenance.recognise(B.SEED_BENCH_1.name, 17_990, None)
    assert provenance.recognise(B.SEED_BENCH_2.name, 24_371, None).startswith("SEED-Bench-2")
    assert provenance.recognise(B.SEED_BENCH_2.name, 24_370, None) is None
    assert provenance.recognise(B.SEED_BENCH_1.name, 54, paper) is None


def samples_and_store(out):
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    store = Store(out)
    try:
        key = RunKey.from_run(store.meta("run"))
        rows = store.rows(key)
        scores = store.scores(key, [r.question_id for r in rows])
    finally:
        store.close()
    assert [s["question_id"] for s in lines] == [r.question_id for r in rows]
    return lines, rows, scores, key


def check_common(lines, rows, key):
    for s, r in zip(lines, rows, strict=True):
        assert (s["dimension"], s["method"], s["preset"]) == (r.dimension, key.method, key.preset)
        assert (s["status"], s["prediction"], s["answer"]) == (r.status, r.prediction, r.answer)
        assert s["content_key"] == r.content_key and len(s["content_key"]) == 64
        assert s["correct"] == (r.prediction == r.answer if r.status == "ok" else None)


@pytest.mark.parametrize("method", ["ppl", "letter"])
def test_samples_of_score_runs_hold_each_options_log_probability(data, one_image_model,
                                                                 tmp_path, method):
    ann, roots = data
    out = tmp_path / method
    assert not evaluate_run(ann, roots, one_image_model, out, dimensions="1,17", method=method).all_failed
    lines, rows, scores, key = samples_and_store(out)
    check_common(lines, rows, key)
    choices = {q["question_id"]: [q[f"choice_{k}"] for k in "abcd"]
               for q in json.loads(ann.read_text())["questions"]}
    answered = [s for s in lines if s["status"] == "ok"]
    assert {s["dimension"] for s in answered} == {1} and len(answered) == 2
    for s in answered:
        stored = scores[s["question_id"]]
        assert [o["logprob_sum"] for o in s["options"]] == [x["logprob_sum"] for x in stored]
        assert [o["num_tokens"] for o in s["options"]] == [x["num_tokens"] for x in stored]
        assert [o["text"] for o in s["options"]] == choices[s["question_id"]]
        assert [o["letter"] for o in s["options"]] == ["A", "B", "C", "D"]
        assert s["error"] is None and s["generated"] is None
    errored = [s for s in lines if s["status"] == "error"]
    assert [s["question_id"] for s in errored] == ["17_0", "17_1"]
    for s, r in zip(errored, [r for r in rows if r.status == "error"], strict=True):
        assert s["error"] == r.error.as_dict()
        assert s["error"]["status"] == "RESOURCE_EXHAUSTED" and s["error"]["attempts"] == 1
        assert "2 images" in s["error"]["message"] and s["options"] is None


def test_samples_of_a_generate_run_hold_the_generated_text(data, one_image_model, tmp_path):
    ann, roots = data
    out = tmp_path / "generate"
    assert not evaluate_run(ann, roots, one_image_model, out, dimensions="1,2", method="generate").all_failed
    lines, rows, scores, key = samples_and_store(out)
    check_common(lines, rows, key)
    assert len(lines) == 4 and all(s["status"] == "ok" for s in lines)
    for s in lines:
        stored = scores[s["question_id"]]
        assert s["generated"] == stored["text"] and s["parse"] == stored["parse"]
        assert s["options"] is None and s["generation"] is None
