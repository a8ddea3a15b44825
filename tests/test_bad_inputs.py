"""A corpus of bad evaluator inputs, each with the outcome it must have.

Per-question problems make that question invalid, with its id and the field
named, while the good questions beside it load (and, over gRPC, get answered);
file-level problems stop the run up front with exit 2 and the path named;
content that is merely unexpected (a fifth choice, extra fields, questions that
look like the other benchmark) is reported as a warning. Never a traceback.
"""

import io
import json
import os
import random
import struct
import subprocess
import sys
import zlib

import pytest
from PIL import Image

from evaluator import cli
from evaluator.data import benchmarks as B
from evaluator.data import dataset
from serving.processes import child_env
from tests.evaluator_runs import run, write_sample
from tests.evaluator_runs import run_argv as run_args
from tests.procs import model_server

DEEP = 100_000  # far past the JSON parser's recursion limit


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    ann, roots = write_sample(root, per_dim=1)
    doc = json.loads(ann.read_text())
    good = [q for q in doc["questions"] if q["question_type_id"] in (1, 2, 17)]
    (root / "cc3m" / "ok.jpg").write_bytes((root / "cc3m" / good[0]["data_id"]).read_bytes())
    (root / "cc3m" / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "cc3m" / "empty_dir").mkdir()
    jpeg = noise_jpeg()
    (root / "cc3m" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    (root / "cc3m" / "bomb.png").write_bytes(png_header(30_000, 30_000))
    (root / "cc3m" / "huge.png").write_bytes(png_header(9_000, 8_000))  # 72M: under PIL's 89M
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "x.jpg").write_bytes((root / "cc3m" / good[0]["data_id"]).read_bytes())
    os.symlink(root / "elsewhere" / "x.jpg", root / "cc3m" / "link.jpg")
    return root, good, roots


def noise_jpeg(size: int = 128) -> bytes:
    im = Image.frombytes("RGB", (size, size), random.Random(0).randbytes(size * size * 3))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming `width` x `height` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def template(good: list[dict]) -> dict:
    return dict(good[0])  # a valid dim-1 cc3m question


def write(root, name: str, questions: list, *, raw: str | None = None):
    path = root / f"{name}.json"
    if raw is not None:
        path.write_text(raw, encoding="utf-8")
    else:
        # ensure_ascii keeps lone surrogates as \ud800 escapes, as a real file would hold them
        path.write_text(json.dumps({"questions": questions}), encoding="utf-8")
    return path


def deep(n: int = DEEP) -> str:
    return "[" * n + "]" * n


SUR = "\ud800"

# (case id, changes to a valid question, (field, part of the reason)); None deletes the field.
PER_QUESTION = [
    ("nul-in-data-id", {"data_id": "shapes/a\x00b.jpg"}, ("data_id", "NUL byte")),
    ("nul-in-data-id-list", {"data_id": ["ok.jpg", "a\x00"]},
     ("data_id[1]", "NUL byte")),
    ("300-char-component", {"data_id": "x" * 300 + ".jpg"},
     ("data_id", "path component of 304 bytes")),
    ("300-char-dir-component", {"data_id": ["ok.jpg", "y" * 300 + "/a.jpg"]},
     ("data_id[1]", "path component of 300 bytes")),
    ("surrogate-question-id", {"question_id": SUR + "q"}, ("question_id", "not valid Unicode")),
    ("surrogate-question", {"question": "What" + SUR}, ("question", "not valid Unicode")),
    ("surrogate-choice", {"choice_b": SUR}, ("choice_b", "not valid Unicode")),
    ("surrogate-data-id", {"data_id": ["shapes/" + SUR + ".jpg"]}, ("data_id", "not valid Unicode")),
    ("surrogate-in-extra-field", {"note": {"k": [SUR]}}, ("note", "not valid Unicode")),
    ("question-id-list", {"question_id": ["a"]}, ("question_id", "non-empty string")),
    ("question-id-bool", {"question_id": True}, ("question_id", "non-empty string")),
    ("question-id-empty", {"question_id": "  "}, ("question_id", "non-empty string")),
    ("question-id-missing", {"question_id": None}, ("question_id", "is missing")),
    ("question-id-1mb", {"question_id": "q" * (1 << 20)},
     ("question_id", "is 1048576 characters long; at most 1024")),
    ("dimension-word", {"question_type_id": "one"}, ("question_type_id", "must be an integer")),
    ("dimension-float", {"question_type_id": 1.0}, ("question_type_id", "must be an integer")),
    ("dimension-99", {"question_type_id": 99}, ("question_type_id", "unknown dimension id 99")),
    ("dimension-0", {"question_type_id": 0}, ("question_type_id", "unknown dimension id 0")),
    ("dimension-negative", {"question_type_id": -3}, ("question_type_id", "unknown dimension")),
    ("dimension-missing", {"question_type_id": None}, ("question_type_id", "is missing")),
    ("answer-E", {"answer": "E"}, ("answer", "must be one of A, B, C, D")),
    ("answer-lowercase", {"answer": "a"}, ("answer", "must be one of A, B, C, D")),
    ("answer-int", {"answer": 1}, ("answer", "must be one of A, B, C, D")),
    ("answer-missing", {"answer": None}, ("answer", "is missing")),
    ("choice-missing", {"choice_a": None}, ("choice_a", "is missing")),
    ("choice-empty", {"choice_c": ""}, ("choice_c", "is empty")),
    ("choice-object", {"choice_d": {"text": "x"}}, ("choice_d", "must be a string, got dict")),
    ("choice-bool", {"choice_a": True}, ("choice_a", "must be a string, got bool")),
    ("question-blank", {"question": " \n "}, ("question", "is empty")),
    ("question-list", {"question": ["a"]}, ("question", "must be a string, got list")),
    ("data-id-missing", {"data_id": None}, ("data_id", "is missing")),
    ("data-id-empty-list", {"data_id": []}, ("data_id", "non-empty list of strings")),
    ("data-id-numbers", {"data_id": [1, 2]}, ("data_id", "non-empty list of strings")),
    ("data-id-empty-string", {"data_id": ""}, ("data_id", "is empty")),
    ("data-id-blank", {"data_id": "  "}, ("data_id", "is empty")),
    ("data-id-absolute", {"data_id": "/etc/passwd"}, ("data_id", "absolute path")),
    ("data-id-windows-absolute", {"data_id": "C:\\x.jpg"}, ("data_id", "absolute path")),
    ("data-id-dotdot", {"data_id": "../x.jpg"}, ("data_id", "escapes its media root")),
    ("data-id-inner-dotdot", {"data_id": "shapes/../../x.jpg"}, ("data_id", "escapes")),
    ("data-id-backslash-dotdot", {"data_id": "..\\x.jpg"}, ("data_id", "escapes")),
    ("data-id-root-itself", {"data_id": "."}, ("data_id", "names the media root itself")),
    ("data-id-symlink-outside", {"data_id": "link.jpg"}, ("data_id", "outside its media root")),
    ("image-missing", {"data_id": "nope.jpg"}, ("data_id", "is missing")),
    ("image-corrupt", {"data_id": "corrupt.jpg"}, ("data_id", "corrupt, truncated or not an image")),
    ("image-truncated", {"data_id": "truncated.jpg"}, ("data_id", "truncated")),
    ("image-decompression-bomb", {"data_id": "bomb.png"},
     ("data_id", "over the decompression limit")),
    ("image-over-the-servers-cap", {"data_id": "huge.png"},
     ("data_id", "is 9000x8000 pixels; the servers decode at most 64000000")),
    ("frame-folder-empty", {"data_id": "empty_dir"}, ("data_id", "holds no images")),
    ("data-source-missing", {"data_source": None}, ("data_source", "is missing")),
    ("data-source-unknown", {"data_source": "laion"}, ("data_source", "no --media-root")),
    ("data-source-number", {"data_source": 3}, ("data_source", "must be a string")),
    ("level-L9", {"level": "L9"}, ("level", "must be one of L1, L2, L3")),
    ("level-number", {"level": 1}, ("level", "must be a string")),
    ("version-v3", {"version": "v3"}, ("version", "must be v1 or v2")),
    ("placeholders-mismatch", {"question": "<img> and <img>: which?"}, ("question", "2 <img>")),
    ("deep-question", {"question": "@DEEP@"}, ("question", "nested deeper than 64 levels")),
    ("deep-choice", {"choice_a": "@DEEP@"}, ("choice_a", "nested deeper than 64 levels")),
    ("deep-extra-field", {"extra": "@DEEP@"}, ("extra", "nested deeper than 64 levels")),
    ("5000-digit-dimension", {"question_type_id": "@HUGE@"},
     ("question_type_id", "integer of more than 4000 digits")),
    ("huge-float-dimension", {"question_type_id": "@INF@"},
     ("question_type_id", "must be an integer, got float")),
]


def make(case_id: str, changes: dict, good: list[dict]) -> dict:
    q = template(good)
    q["question_id"] = f"bad-{case_id}"
    for k, v in changes.items():
        if v is None:
            q.pop(k, None)
        else:
            q[k] = v
    return q


def expected_id(bad: dict, index: int) -> str:
    """How a rejected question is named: its id (lone surrogates escaped), else its position."""
    v = bad.get("question_id")
    if isinstance(v, str) and v.strip() and len(v) <= 1024:
        return v.encode("utf-8", "backslashreplace").decode()
    return f"#{index}"


def dump_with_deep(questions: list) -> str:
    return (json.dumps({"questions": questions}).replace('"@DEEP@"', deep())
            .replace('"@HUGE@"', "1" * 5000).replace('"@INF@"', "1e400"))


def load(path, roots):
    return dataset.load(path, roots)


@pytest.mark.parametrize("case_id, changes, expected", PER_QUESTION,
                         ids=[c[0] for c in PER_QUESTION])
def test_a_bad_question_is_that_questions_error(sample, case_id, changes, expected):
    root, good, roots = sample
    bad = make(case_id, changes, good)
    path = write(root, case_id, [], raw=dump_with_deep([good[1], bad, good[2]]))
    ds = load(path, roots)
    assert [q.question_id for q in ds.questions] == [good[1]["question_id"],
                                                      good[2]["question_id"]]
    fld, reason = expected
    got = [(x.field, x.reason) for x in ds.invalid]
    assert len(got) >= 1 and got[0][0] == fld and reason in got[0][1], got
    assert ds.rejected == 1
    assert ds.invalid[0].question_id == expected_id(bad, 1)
    json.dumps([x.__dict__ for x in ds.invalid]).encode("utf-8")  # storable, printable
    str(ds.invalid[0]).encode("utf-8")


def test_question_that_is_not_an_object(sample):
    root, good, roots = sample
    path = write(root, "not-objects", [good[1], "hello", None, [1], 5, good[2]])
    ds = load(path, roots)
    assert len(ds.questions) == 2
    assert [(x.question_id, x.field, x.reason) for x in ds.invalid] == [
        (f"#{i}", "(question)", "is not a JSON object") for i in (1, 2, 3, 4)]


def test_duplicate_question_id(sample):
    root, good, roots = sample
    path = write(root, "dup", [good[1], dict(good[1], choice_a="other")])
    ds = load(path, roots)
    assert len(ds.questions) == 1
    assert [(x.field, x.reason) for x in ds.invalid] == [("question_id", "is a duplicate")]


def test_json_literals_json_allows_but_questions_do_not(sample):
    root, good, roots = sample
    text = json.dumps({"questions": [good[1], dict(good[1], question_id="nan", answer="@")]})
    path = write(root, "nan", [], raw=text.replace('"@"', "NaN"))
    ds = load(path, roots)
    assert ds.invalid[0].field == "answer" and "nan" in ds.invalid[0].reason
    path = write(root, "inf", [], raw=json.dumps({"questions": [
        dict(good[1], question_type_id="@")]}).replace('"@"', "1e400"))
    assert "must be an integer, got float" in load(path, roots).invalid[0].reason


# -- warnings: ignored content is said, the question runs ---------------------------------


def test_a_fifth_choice_and_extra_fields_are_warnings(sample):
    root, good, roots = sample
    qs = [dict(good[0], choice_e="fifth"), dict(good[1], gt_answer="A", note="x"),
          dict(good[2], note="y")]
    ds = load(write(root, "extras", qs), roots)
    assert len(ds.questions) == 3 and not ds.invalid
    text = "\n".join(ds.warnings)
    assert "'choice_e' ignored (a fifth choice" in text and good[0]["question_id"] in text
    assert "'note' ignored (not a SEED-Bench-2 field) in 2 question(s)" in text
    assert "'gt_answer' ignored" in text
    assert ds.questions[0].choices == tuple(good[0][f"choice_{c}"] for c in "abcd")


def v1_question(i: int, dim: int, **extra) -> dict:
    return {"question_id": f"v1_{i}", "question": "What colour?", "choice_a": "a",
            "choice_b": "b", "choice_c": "c", "choice_d": "d", "answer": "A",
            "question_type_id": dim, "data_id": "ok.jpg",
            "data_type": "image", **extra}


def test_benchmark_is_decided_by_majority_and_misfits_reported(sample):
    root, _, roots = sample
    image = root / "cc3m"  # SEED-Bench-1 images: reuse the sample's shapes
    qs = [v1_question(i, 1 + i % 9) for i in range(8)]
    qs.append(v1_question(8, 13))                   # a stray SEED-Bench-2 dimension
    qs.append(v1_question(9, 2, version="v1"))      # a stray SEED-Bench-2 key
    ds = dataset.load(write(root, "v1-stray", qs), {"": image})
    assert ds.benchmark == B.SEED_BENCH_1.name
    assert len(ds.questions) == 9  # the stray key is harmless; dimension 13 is not SEED-Bench-1
    assert [(x.question_id, x.field) for x in ds.invalid] == [("v1_8", "question_type_id")]
    assert "unknown dimension id 13 for SEED-Bench-1" in ds.invalid[0].reason
    misfit = [w for w in ds.warnings if "look like SEED-Bench-2" in w]
    assert misfit and "2 question(s)" in misfit[0] and "v1_8, v1_9" in misfit[0]
    assert not any("'version'" in w for w in ds.warnings)  # a field SEED-Bench-2 has


def test_a_byte_order_mark_is_accepted(sample):
    root, good, roots = sample
    path = root / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([good[1]]).encode())
    assert len(load(path, roots).questions) == 1


# -- file-level problems: exit 2 naming the path, before any server is asked -------------


def run_cli(capsys, ann, roots, out, *extra):
    rc = cli.main(run_args(ann, roots, "127.0.0.1:1", out, *extra))
    return rc, capsys.readouterr().err


FILE_LEVEL = [
    ("missing", None, "cannot read annotations"),
    ("not-json", "{not json", "cannot read annotations"),
    ("bad-utf8", b"\xff\xfe\x00garbage", "cannot read annotations"),
    ("number", "42", "expected a list of questions"),
    ("dict-without-questions", '{"q": []}', "expected a list of questions"),
    ("questions-not-list", '{"questions": {"a": 1}}', "expected a list of questions"),
    ("empty-list", "[]", "holds no questions"),
    ("empty-questions", '{"questions": []}', "holds no questions"),
    ("deep-top-level", deep(), "no valid question selected"),
    ("only-bad-questions", json.dumps([{"question_id": "x"}, 3]), "no valid question selected"),
]


@pytest.mark.parametrize("name, content, message", FILE_LEVEL, ids=[c[0] for c in FILE_LEVEL])
def test_file_level_problems_exit_2_naming_the_path(sample, tmp_path, capsys, name, content,
                                                    message):
    root, good, roots = sample
    ann = tmp_path / f"{name}.json"
    if isinstance(content, bytes):
        ann.write_bytes(content)
    elif content is not None:
        ann.write_text(content)
    rc, err = run_cli(capsys, ann, roots, tmp_path / "out")
    assert rc == 2, err
    flat = " ".join(err.split())
    assert message in flat and str(ann) in flat
    assert "Traceback" not in err


def test_annotation_path_is_a_folder(sample, tmp_path, capsys):
    _, _, roots = sample
    rc, err = run_cli(capsys, tmp_path, roots, tmp_path / "out")
    assert rc == 2 and "cannot read annotations" in err and str(tmp_path) in " ".join(err.split())


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_media_root_that_is_not_a_folder_exits_2(sample, tmp_path, capsys, kind):
    root, good, roots = sample
    ann = write(tmp_path, "ok", [good[1]])
    bad = tmp_path / "media"
    if kind == "file":
        bad.write_text("x")
    rc, err = run_cli(capsys, ann, {"cc3m": bad}, tmp_path / "out")
    flat = " ".join(err.split())
    assert rc == 2 and f"--media-root cc3m={bad}" in flat
    assert ("does not exist" if kind == "missing" else "not a folder") in flat


def test_no_media_root_for_the_source_names_it_and_exits_2(sample, tmp_path, capsys):
    root, good, roots = sample
    ann = write(tmp_path, "ok", [good[1]])
    rc, err = run_cli(capsys, ann, {}, tmp_path / "out")
    flat = " ".join(err.split())
    assert rc == 2 and "no --media-root for source 'cc3m'" in flat
    assert "no valid question selected" in flat


def test_filters_selecting_nothing_exit_2(sample, tmp_path, capsys):
    root, good, roots = sample
    ann = write(tmp_path, "ok", [good[1]])
    rc, err = run_cli(capsys, ann, roots, tmp_path / "out", "--dimensions", "5")
    assert rc == 2 and "no question matches the filters" in err


def test_filters_for_seed_bench_2_on_a_seed_bench_1_file(sample, tmp_path, capsys):
    root, _, _ = sample
    ann = write(tmp_path, "v1", [v1_question(0, 1)])
    rc, err = run_cli(capsys, ann, {"": root / "cc3m"}, tmp_path / "out", "--level", "L1")
    assert rc == 2 and "apply to SEED-Bench-2 only" in err


# -- over gRPC: every bad question at once, the good ones answered ------------------------


def test_a_run_full_of_bad_questions_answers_the_good_ones(sample, tmp_path):
    root, good, roots = sample
    bad = [make(c, ch, good) for c, ch, _ in PER_QUESTION]
    ann = write(tmp_path, "all-bad", [], raw=dump_with_deep(
        [good[0], *bad, good[1], "junk", dict(good[2], choice_e="e", extra=1)]))
    out = tmp_path / "out"
    with model_server(["--backend", "synthetic", "--model", "m1",
                       "--log-level", "WARNING"]) as (model, _):
        r = subprocess.run([sys.executable, "-m", "evaluator.cli",
                            *run_args(ann, roots, model, out)],
                           env=child_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["counts"]["answered"] == 3 and s["counts"]["errors"] == 0
    assert s["counts"]["skipped_invalid"] == len(PER_QUESTION) + 1
    invalid = [json.loads(x) for x in (out / "invalid.jsonl").read_text().splitlines()]
    first = {}
    for x in invalid:
        first.setdefault(x["question_id"], x)
    for k, (q, (_, _, (fld, reason))) in enumerate(zip(bad, PER_QUESTION, strict=True)):
        got = first[expected_id(q, 1 + k)]
        assert got["field"] == fld and reason in got["reason"], got
    assert "'choice_e' ignored" in r.stderr and "'extra' ignored" in r.stderr


def test_images_over_the_servers_message_limit_are_refused_before_sending(sample, tmp_path):
    root, good, roots = sample
    big = root / "cc3m" / "big.jpg"
    big.write_bytes(noise_jpeg(600))  # ~ 400 KB of noise; the server takes 0.25 MB
    assert big.stat().st_size > 300_000
    qs = [good[0], dict(good[1], question_id="too-big", data_id="big.jpg")]
    ann = write(tmp_path, "big", qs)
    out = tmp_path / "out"
    with model_server(["--backend", "synthetic", "--model", "m1", "--max-message-mb", "0.25",
                       "--log-level", "WARNING"]) as (model, _):
        result = run(ann, roots, model, out)
    assert (result.summary.counts.answered, result.summary.counts.errors) == (1, 1)
    s = json.loads((out / "summary.json").read_text())
    assert s["counts"]["answered"] == 1 and s["counts"]["errors"] == 1
    err = json.loads((out / "errors.jsonl").read_text())
    assert err["question_id"] == "too-big" and err["status"] == "MEDIA"
    assert "accepts messages up to 262144 bytes" in err["message"]
    run_file = json.loads((out / "run.json").read_text())
    assert run_file["endpoints"][0]["calls"] == 1, "the too-big question was never sent"


ODD_VALUES = [None, True, 0, -1, 1.5, float("inf"), "", " ", "\x00", SUR, "<img>", "A",
              "../x", "/abs", "ok.jpg", "x" * 300, [], [None], ["ok.jpg", 3], {"a": SUR},
              [[["deep"]]], {"question_id": "nested"}]


def test_any_odd_value_in_any_field_is_an_error_or_accepted_never_a_crash(sample):
    root, good, roots = sample
    rng = random.Random(7)
    fields = [*template(good), "choice_e", "segment", "other"]
    qs = []
    for i in range(400):
        q = template(good)
        q["question_id"] = f"odd{i}"
        for fld in rng.sample(fields, rng.randint(1, 3)):
            q[fld] = rng.choice(ODD_VALUES)
        qs.append(q)
    ds = load(write(root, "odd", qs), roots)
    rejected = {x.position for x in ds.invalid}
    assert len(ds.questions) + len(rejected) == len(qs)
    assert all(x.field and x.reason for x in ds.invalid)
    json.dumps([x.as_dict() for x in ds.invalid]).encode("utf-8")
    "\n".join(map(str, ds.invalid)).encode("utf-8")
    "\n".join(ds.warnings).encode("utf-8")
    for q in ds.questions:  # what was accepted is usable as sent
        assert q.answer in "ABCD" and all(isinstance(c, str) and c for c in q.choices)
        assert q.question_id.encode("utf-8") and q.images
