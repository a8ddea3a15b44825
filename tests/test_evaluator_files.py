"""Submission reader tolerance, sample-data determinism and layout, prompt building."""

import hashlib
import json

import pytest

from evaluator.data import sample_data
from evaluator.data.dataset import Question, load
from evaluator.data.media import parse_media_roots
from evaluator.results import submission
from evaluator.run import methods, presets


def test_submission_reader_is_tolerant(tmp_path):
    p = tmp_path / "published.jsonl"
    p.write_text('[\n{"question_id": "1", "prediction": "A", "gt_answer": "B"},\n'
                 '{"question_id": 2, "prediction": "C"},\n\n'
                 '{"question_id": "1", "prediction": "D"}\n'
                 'garbage line\n]\n')
    r = submission.read(p)
    assert r.predictions == {"1": "D", "2": "C"}
    assert r.duplicates == ["1"] and r.bad_lines == [6]


def test_submission_reader_takes_published_shapes(tmp_path):
    # The benchmark's published result files: `},` line ends with gt_answer, no brackets.
    lines = ['{"question_id": "9_85", "prediction": "D", "gt_answer": "D"},',
             '{"question_id": "9_87", "prediction": "D", "gt_answer": "C"},',
             '{"question_id": "v1738", "prediction": "B", "gt_answer": "B"}']
    published = tmp_path / "GPT-4V.json"
    published.write_text("\n".join(lines) + "\n")
    want = {"9_85": "D", "9_87": "D", "v1738": "B"}
    r = submission.read(published)
    assert r.predictions == want and not r.bad_lines and not r.duplicates
    # The same rows as one JSON array on one line, and as an array opened on its first row.
    one_line = tmp_path / "array.json"
    one_line.write_text("[" + " ".join(lines) + "]")
    assert submission.read(one_line).predictions == want
    opened = tmp_path / "opened.json"
    opened.write_text("[" + "\n".join(lines) + "]\n")
    r = submission.read(opened)
    assert r.predictions == want and not r.bad_lines


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
    assert {by_dim[4][f"choice_{c}"] for c in "abcd"} == set(sample_data.QUADRANTS)
    assert {by_dim[6][f"choice_{c}"] for c in "abcd"} == set(sample_data.RELATIONS)
    ds = load(a / sample_data.V2_FILE, parse_media_roots(
        [f"cc3m={a / 'cc3m'}", f"SEED-Bench v2={a / 'seed_bench_v2'}"]))
    assert not ds.invalid and len(ds.questions) == 54


def test_sample_data_v1(tmp_path):
    path = sample_data.write_v1(tmp_path, per_dim=1)
    again = sample_data.write_v1(tmp_path / "again", per_dim=1)
    assert digest(path.parent / "v1_video") == digest(again.parent / "v1_video")
    assert digest(path.parent / "epic-kitchens") == digest(again.parent / "epic-kitchens")
    # Another seed written over the same folder leaves no stale video behind.
    sample_data.write_v1(tmp_path / "again", seed=5, per_dim=1)
    fresh = sample_data.write_v1(tmp_path / "fresh", seed=5, per_dim=1)
    for sub in ("epic-kitchens", "breakfast", "v1_video"):
        assert digest(again.parent / sub) == digest(fresh.parent / sub)
    image = f"image={tmp_path / 'image'}"
    frames = load(path, parse_media_roots([image, f"frames={tmp_path / 'v1_video'}"]))
    raw = load(path, parse_media_roots([image, f"ssv2={tmp_path / 'ssv2'}",
                                        f"epic-kitchens={tmp_path / 'epic-kitchens'}",
                                        f"breakfast={tmp_path / 'breakfast'}"]))
    for ds in (frames, raw):
        assert ds.benchmark == "SEED-Bench-1" and not ds.invalid and len(ds.questions) == 12
        assert sorted(ds.video_sources) == [10, 11, 12]
    assert all("8-frame folders" in s for s in frames.video_sources.values())
    assert all("raw videos" in s for s in raw.video_sources.values())
    assert len(frames.questions[-1].images) == 8 and frames.questions[-1].video is None
    assert raw.questions[-1].images == () and raw.questions[-1].video.rule == "frames"


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


def test_sample_data_mix_follows_seed_bench_2_proportions(tmp_path):
    """--mix N: N questions of dims 1-24 whose image counts follow the full L1+L2 set."""
    ann = sample_data.write_v2(tmp_path, mix=200)
    qs = json.loads(ann.read_text())["questions"]
    assert len(qs) == 200 and {q["question_type_id"] for q in qs} == set(range(1, 25))
    full = sample_data.FULL_COUNTS[:24]

    def share(dims, counts):
        return sum(counts[d - 1] for d in dims) / sum(counts)

    got = [sum(q["question_type_id"] == d for q in qs) for d in range(1, 25)]
    assert got == sample_data.mix_counts(200)
    for dims in (range(1, 17), range(17, 19), range(19, 23), range(23, 25)):  # 1, 2, 8, 3 images
        assert abs(share(dims, got) - share(dims, full)) < 0.05
    frames = [len(q["data_id"]) for q in qs if q["question_type_id"] in range(19, 23)]
    assert frames and set(frames) == {8}
    with pytest.raises(ValueError, match="at least 24"):
        sample_data.mix_counts(10)


@pytest.mark.parametrize("argv, says", [
    (["--mix", "12"], "a mix needs at least 24 questions"),
    (["--per-dim", "0"], "argument --per-dim: 0 is not >= 1"),
    (["--mix", "many"], "argument --mix: 'many' is not a whole number"),
])
def test_sample_data_cli_refuses_bad_counts_in_one_line(tmp_path, capsys, argv, says):
    from evaluator import cli

    try:
        rc = cli.main(["sample-data", "--out", str(tmp_path / "d"), *argv])
    except SystemExit as exc:  # argparse's own refusal
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and says in err and "Traceback" not in err
    assert not (tmp_path / "d" / "SEED-Bench_v2_level1_2_3.json").exists()
