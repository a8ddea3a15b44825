"""Loader validation: every bad question named with file, id, field and reason."""

import json
import os

import pytest
from PIL import Image

from evaluator.data import benchmarks as B
from evaluator.data import dataset
from evaluator.data.media import parse_media_roots


def good(qid, dim=1, data_id="a.png", **kw):
    q = {"question_id": qid, "question": "What colour?", "choice_a": "red", "choice_b": "green",
         "choice_c": "blue", "choice_d": "yellow", "answer": "A", "question_type_id": dim,
         "data_id": data_id, "data_source": "cc3m", "level": "L1", "subpart":
         "Single-Image & Text Comprehension", "version": "v1"}
    q.update(kw)
    return q


@pytest.fixture
def media(tmp_path):
    root = tmp_path / "cc3m"
    root.mkdir()
    Image.new("RGB", (8, 8), "red").save(root / "a.png")
    (root / "corrupt.png").write_bytes(b"not an image at all")
    outside = tmp_path / "outside.png"
    Image.new("RGB", (8, 8), "blue").save(outside)
    os.symlink(outside, root / "link.png")
    return {"cc3m": root}


def write(tmp_path, questions, wrap=True):
    p = tmp_path / "ann.json"
    p.write_text(json.dumps({"questions": questions, "question_type": {}} if wrap else questions))
    return p


def test_every_bad_question_reported(tmp_path, media):
    no_answer = good("q_noanswer")
    del no_answer["answer"]
    no_choice = good("q_nochoice")
    del no_choice["choice_c"]
    questions = [
        good("ok1"), no_answer, no_choice,
        good("q_type", question_type_id="five"),
        good("q_dim", question_type_id=99),
        good("q_letter", answer="E"),
        good("q_missing", data_id="nope.png"),
        good("q_corrupt", data_id="corrupt.png"),
        good("q_dotdot", data_id="../x.png"),
        good("q_abs", data_id="/etc/passwd"),
        good("q_link", data_id="link.png"),
        good("q_listtype", data_id=[1, 2]),
        good("q_text", question=7),
        good("ok2", data_id=["a.png", "a.png"], question="<img> and <img>?"),
        good("q_imgcount", data_id="a.png", question="<img> and <img>?"),
        good("ok1"),
    ]
    ann = write(tmp_path, questions)
    ds = dataset.load(ann, media)
    assert ds.benchmark == B.SEED_BENCH_2.name
    assert [q.question_id for q in ds.questions] == ["ok1", "ok2"]
    by_id = {(b.question_id, b.field): b for b in ds.invalid}
    assert all(b.file == str(ann) for b in ds.invalid)
    expected = {
        ("q_noanswer", "answer"): "missing", ("q_nochoice", "choice_c"): "missing",
        ("q_type", "question_type_id"): "integer", ("q_dim", "question_type_id"): "unknown",
        ("q_letter", "answer"): "A, B, C, D", ("q_missing", "data_id"): "missing",
        ("q_corrupt", "data_id"): "corrupt", ("q_dotdot", "data_id"): "escapes",
        ("q_abs", "data_id"): "absolute", ("q_link", "data_id"): "outside",
        ("q_listtype", "data_id"): "list of strings", ("q_text", "question"): "string",
        ("q_imgcount", "question"): "placeholders", ("ok1", "question_id"): "duplicate",
    }
    for key, word in expected.items():
        assert key in by_id, f"{key} not reported: {ds.invalid}"
        assert word in by_id[key].reason
        assert key[0] in str(by_id[key]) and str(ann) in str(by_id[key])
    assert len(ds.invalid) == len(expected)


def test_bare_list_and_v1_detection(tmp_path):
    root = tmp_path / "img"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "a.png")
    frames = tmp_path / "vid" / "task10" / "ssv2_8_frame" / "v1"  # keyed by question id
    frames.mkdir(parents=True)
    for k in range(1, 11):
        Image.new("RGB", (8, 8), (k, 0, 0)).save(frames / f"{k}.png")
    qs = [good("1"), good("v1", dim=10, data_id="94328.webm")]
    for q in qs:
        for k in ("data_source", "level", "subpart", "version"):
            del q[k]
    ds = dataset.load(write(tmp_path, qs, wrap=False),
                      parse_media_roots([f"image={root}", f"frames={tmp_path / 'vid'}"]))
    assert ds.benchmark == B.SEED_BENCH_1.name and not ds.invalid
    # numeric order: 2.png before 10.png
    assert [p.name for p in ds.questions[1].images] == [f"{k}.png" for k in range(1, 11)]


def test_media_root_parsing(tmp_path):
    roots = parse_media_roots(["cc3m=/a", "SEED-Bench v2=/b", "/c"])
    assert roots == {"cc3m": __import__("pathlib").Path("/a"),
                     "SEED-Bench v2": __import__("pathlib").Path("/b"),
                     "": __import__("pathlib").Path("/c")}


def test_missing_source_root_reported(tmp_path, media):
    ds = dataset.load(write(tmp_path, [good("x", data_source="SEED-Bench v2")]), media)
    assert ds.invalid[0].field == "data_source" and "no --media-root" in ds.invalid[0].reason


def test_filters_and_limit(tmp_path, media):
    qs = [good("a"), good("b", level="L2", question_type_id=23), good("c", version="v2")]
    ann = write(tmp_path, qs)
    ids = lambda f: [q.question_id for q in dataset.load(ann, media, f).questions]  # noqa: E731
    assert ids(dataset.Filters(level="L1")) == ["a", "c"]
    assert ids(dataset.Filters(version="v1")) == ["a", "b"]
    assert ids(dataset.Filters(limit=1)) == ["a"]


def test_unreadable_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{nope")
    with pytest.raises(dataset.AnnotationError):
        dataset.load(p, {})


def test_l3_placeholders_may_count_only_the_input_images(tmp_path, media):
    l3 = dict(dim=26, level="L3", subpart="Image Generation", data_id=["a.png"] * 7)
    questions = [
        good("inputs_only", question="<img> <img> <img> what comes next?", **l3),
        good("all_images", question=" ".join(["<img>"] * 7) + " next?", **l3),
        good("wrong_count", question="<img> <img> next?", **l3),
    ]
    ds = dataset.load(write(tmp_path, questions), media)
    assert [q.question_id for q in ds.questions] == ["inputs_only", "all_images"]
    assert [(x.question_id, x.field) for x in ds.invalid] == [("wrong_count", "question")]


def test_numeric_choices_are_read_as_their_text(tmp_path, media):
    ds = dataset.load(write(tmp_path, [good("n", choice_a=3, choice_b=4.5, choice_c="5",
                                            choice_d=True)]), media)
    assert [(x.question_id, x.field) for x in ds.invalid] == [("n", "choice_d")]
    ds = dataset.load(write(tmp_path, [good("n", choice_a=3, choice_b=4.5)]), media)
    assert ds.questions[0].choices[:2] == ("3", "4.5")
