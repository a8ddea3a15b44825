"""Submission reader tolerance, sample-data determinism and layout, prompt building."""

import hashlib
import json

from evaluator import methods, presets, sample_data, submission
from evaluator.dataset import Question, load
from evaluator.media import parse_media_roots


def test_submission_reader_is_tolerant(tmp_path):
    p = tmp_path / "published.jsonl"
    p.write_text('[\n{"question_id": "1", "prediction": "A", "gt_answer": "B"},\n'
                 '{"question_id": 2, "prediction": "C"},\n\n'
                 '{"question_id": "1", "prediction": "D"}\n'
                 'garbage line\n]\n')
    r = submission.read(p)
    assert r.predictions == {"1": "D", "2": "C"}
    assert r.duplicates == ["1"] and r.bad_lines == [6]


def test_submission_written_strictly(tmp_path):
    p = tmp_path / "s.jsonl"
    assert submission.write(p, [("a", "B"), ("b", "C")]) == 2
    lines = p.read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"question_id": "a", "prediction": "B"},
                                              {"question_id": "b", "prediction": "C"}]


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_sample_data_deterministic_and_valid(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    sample_data.write_v2(a, seed=3, per_dim=2)
    sample_data.write_v2(b, seed=3, per_dim=2)
    sample_data.write_v2(c, seed=4, per_dim=2)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)
    doc = json.loads((a / sample_data.V2_FILE).read_text())
    qs = doc["questions"]
    assert {q["question_type_id"] for q in qs} == set(range(1, 28))
    assert {q["data_source"] for q in qs} == {"cc3m", "SEED-Bench v2"}
    by_dim = {q["question_type_id"]: q for q in qs}
    assert len(by_dim[19]["data_id"]) == 8 and len(by_dim[17]["data_id"]) == 2
    assert by_dim[23]["question"].count("<img>") == len(by_dim[23]["data_id"])
    assert len(by_dim[25]["data_id"]) == 4 and by_dim[25]["choice_a"] == "1.jpg"
    assert len(by_dim[26]["data_id"]) == 7 and len(by_dim[27]["data_id"]) == 4
    ds = load(a / sample_data.V2_FILE, parse_media_roots(
        [f"cc3m={a / 'cc3m'}", f"SEED-Bench v2={a / 'seed_bench_v2'}"]))
    assert not ds.invalid and len(ds.questions) == 54


def test_sample_data_v1(tmp_path):
    path = sample_data.write_v1(tmp_path, per_dim=1)
    ds = load(path, parse_media_roots([f"image={tmp_path / 'image'}",
                                       f"video={tmp_path / 'video'}"]))
    assert ds.benchmark == "SEED-Bench-1" and not ds.invalid and len(ds.questions) == 12
    assert len(ds.questions[-1].image_paths) == 8


def test_methods():
    q = Question(0, "1", "What is it?", ("cat", "dog", "a red car", "sky"), "B", 1, ("x",))
    mean, total = presets.get("chat-mean"), presets.get("seed1-instructblip")
    assert methods.score_prompt(q, "ppl", mean).options == ("cat", "dog", "a red car", "sky")
    letter = methods.score_prompt(q, "letter", mean)
    assert letter.options == ("A", "B", "C", "D")
    assert "A. cat\nB. dog\nC. a red car\nD. sky" in letter.text
    scores = [(-2.0, 1), (-3.0, 1), (-4.5, 3), (-9.0, 1)]
    assert methods.pick(mean, scores) == "C"       # mean: -1.5 beats -2
    assert methods.pick(total, scores) == "A"      # sum: -2 is best
    assert methods.pick(mean, [(-1.0, 1), (-1.0, 1), (-5, 1), (-5, 1)]) == "A"
