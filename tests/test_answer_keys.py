"""Every stored answer is tied to exactly what produced it: the question as asked, its images'
bytes and the model's fingerprint. Counted from the scripted model server's own call log."""

import hashlib
import json
import os
import shutil

import pytest
from PIL import Image

from evaluator.data import sample_data
from evaluator.data.dataset import Question
from evaluator.results.content_key import content_key
from evaluator.results.runkey import RunKey
from evaluator.results.store import Store
from evaluator.run import presets
from evaluator.run.session import FRAME_CACHE
from tests.evaluator_runs import run as evaluate_run
from tests.evaluator_runs import write_sample
from tests.procs import model_server

DIMS = "1,2,17"  # single images, and several images per question (17)
QUIET = ["--log-level", "WARNING"]


def scripted_server(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"{name}.json"
    script.write_text(json.dumps({"name": name, "log": f"{name}.calls.jsonl"}))
    return model_server(["--backend", "scripted", "--model", str(script), *QUIET]), \
        folder / f"{name}.calls.jsonl"


class CallLog:
    """The request ids the server has seen since the last `new()`."""

    def __init__(self, path):
        self.path, self.seen = path, 0

    def new(self) -> list[str]:
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        fresh, self.seen = lines[self.seen:], len(lines)
        return sorted(json.loads(x)["request_id"] for x in fresh)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    server, log = scripted_server(tmp_path_factory.mktemp("model"), "keys-model")
    with server as (target, _):
        yield target, CallLog(log)


def selected(ann) -> list[dict]:
    return [q for q in json.loads(ann.read_text())["questions"] if q["question_type_id"] in (1, 2, 17)]


def edit(ann, qid, **fields):
    doc = json.loads(ann.read_text())
    for q in doc["questions"]:
        if q["question_id"] == qid:
            q.update(fields)
    ann.write_text(json.dumps(doc))


def run(ann, roots, target, out) -> dict:
    """run.json of one evaluation through the library, with the run's warnings beside it."""
    result = evaluate_run(ann, roots, target, out, dimensions=DIMS)
    assert not result.all_failed
    return {**json.loads((out / "run.json").read_text()),
            "warnings": " ".join(" ".join(result.warnings).split())}


def samples(out) -> dict[str, dict]:
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    return {s["question_id"]: s for s in lines}


def test_an_edited_question_alone_is_asked_again(model, tmp_path):
    target, calls = model
    ann, roots = write_sample(tmp_path / "data", per_dim=2)
    out = tmp_path / "out"
    calls.new()
    run(ann, roots, target, out)
    every = sorted(q["question_id"] for q in selected(ann))
    assert calls.new() == every
    keys = {q: s["content_key"] for q, s in samples(out).items()}
    assert all(len(k) == 64 for k in keys.values())

    edit(ann, "2_1", question="Which colour is the shape, really?")
    again = run(ann, roots, target, out)
    assert calls.new() == ["2_1"], "only the edited question is asked again"
    assert again["todo"] == 1 and again["stale"] == 1
    now = samples(out)
    assert {q for q in keys if now[q]["content_key"] != keys[q]} == {"2_1"}
    assert now["2_1"]["status"] == "ok"

    # A corrected answer key is not a new question: the stored prediction is re-scored.
    old = now["1_0"]
    edit(ann, "1_0", answer="D" if old["answer"] != "D" else "C")
    third = run(ann, roots, target, out)
    assert calls.new() == [] and third["todo"] == 0 and third["media_hashed"] == 0
    rescored = samples(out)["1_0"]
    assert rescored["content_key"] == old["content_key"]
    assert rescored["prediction"] == old["prediction"] and rescored["answer"] != old["answer"]


def media_of(q: dict, data) -> list:
    ids = [q["data_id"]] if isinstance(q["data_id"], str) else q["data_id"]
    root = data / ("cc3m" if q["data_source"] == "cc3m" else "seed_bench_v2")
    return [root / i for i in ids]


def test_changed_image_bytes_ask_only_its_questions_again(model, tmp_path):
    target, calls = model
    data = tmp_path / "data"
    ann, roots = write_sample(data, per_dim=2)
    out = tmp_path / "out"
    run(ann, roots, target, out)
    calls.new()
    uses: dict = {}
    for q in selected(ann):
        for p in media_of(q, data):
            uses.setdefault(p, []).append(q["question_id"])
    path = max(uses, key=lambda p: len(uses[p]))  # an image two questions share
    assert len(uses[path]) > 1
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.putpixel((0, 0), tuple(255 - c for c in im.getpixel((0, 0))))
        im.save(path, format=Image.registered_extensions()[path.suffix.lower()])
    again = run(ann, roots, target, out)
    assert calls.new() == sorted(uses[path]) and again["stale"] == len(uses[path])
    assert again["media_hashed"] == 1, "only the changed file was read to learn its digest"

    # Same bytes, new modification time: read once to re-learn the digest, nothing asked.
    other = next(p for p in uses if p != path)
    st = other.stat()
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    third = run(ann, roots, target, out)
    assert calls.new() == [] and third["todo"] == 0 and third["media_hashed"] == 1
    fourth = run(ann, roots, target, out)
    assert fourth["media_hashed"] == 0, "a rerun reads no image to decide what to skip"


def test_another_fingerprint_never_reuses_an_answer(tmp_path):
    """The rule: answers are never shared between fingerprints, and none is deleted: a rerun
    into the same --out with another model asks everything again, and both sets are kept."""
    ann, roots = write_sample(tmp_path / "data", per_dim=1)
    out = tmp_path / "out"
    server_a, log_a = scripted_server(tmp_path / "a", "model-a")
    server_b, log_b = scripted_server(tmp_path / "b", "model-b")
    every = sorted(q["question_id"] for q in selected(ann))
    with server_a as (a, _), server_b as (b, _):
        calls_a, calls_b = CallLog(log_a), CallLog(log_b)
        run(ann, roots, a, out)
        assert calls_a.new() == every
        fp_a = json.loads((out / "summary.json").read_text())["model"]["fingerprint"]
        second = run(ann, roots, b, out)
        err = second["warnings"]
        assert calls_b.new() == every and second["todo"] == len(every)
        fp_b = json.loads((out / "summary.json").read_text())["model"]["fingerprint"]
        assert fp_a != fp_b and fp_a in err and fp_b in err and "none of them is reused" in err
        assert second["provenance"]["model"]["fingerprint"] == fp_b
        # Model A's answers were kept: asking A again costs nothing.
        third = run(ann, roots, a, out)
        assert calls_a.new() == [] and third["todo"] == 0
    store = Store(out)
    try:
        assert store.answered_ids(RunKey(fp_a, "ppl", False)) == set(every)
        assert store.answered_ids(RunKey(fp_b, "ppl", False)) == set(every)
    finally:
        store.close()


def test_raw_video_frames_are_keyed_by_the_bytes_sent(tmp_path):
    """SEED-Bench-1 dims 10-12 from raw videos: the key holds the sampled frames' sha256; with
    the frame cache gone, a rerun decodes again to check, and asks nothing."""
    root = tmp_path / "v1"
    ann = sample_data.write_v1(root, seed=3, per_dim=1)
    roots = {key: root / key for key in ("ssv2", "epic-kitchens", "breakfast")}
    out = tmp_path / "out"
    server, log = scripted_server(tmp_path / "m", "video-model")
    with server as (target, _):
        calls = CallLog(log)
        assert not evaluate_run(ann, roots, target, out, dimensions="10,11,12").all_failed
        assert calls.new() == ["v10_0", "v11_0", "v12_0"]
        keys = {q: s["content_key"] for q, s in samples(out).items()}
        shutil.rmtree(out / FRAME_CACHE)
        assert not evaluate_run(ann, roots, target, out, dimensions="10,11,12").all_failed
        again = json.loads((out / "run.json").read_text())
        assert calls.new() == [] and again["todo"] == 0 and again["videos_decoded"] == 3
        assert {q: s["content_key"] for q, s in samples(out).items()} == keys
    # The key is the one of the frames in the cache, as sent.
    doc = {q["question_id"]: q for q in json.loads(ann.read_text())["questions"]}
    clips = [json.loads(p.read_text()) for p in (out / FRAME_CACHE / "clips").glob("*.json")]
    for clip in clips:
        qid = next(q for q, x in doc.items() if x.get("data_id") == clip["data_id"]
                   and (x.get("segment") is None or x.get("segment") == clip["segment"]))
        frames = [hashlib.sha256((out / FRAME_CACHE / "frames" / n).read_bytes()).hexdigest()
                  for n in clip["frames"]]
        x = doc[qid]
        q = Question(index=0, question_id=qid, question=x["question"],
                     choices=tuple(x[f"choice_{k}"] for k in "abcd"), answer=x["answer"],
                     dimension=x["question_type_id"], data_ids=(x["data_id"],),
                     segment=tuple(x["segment"]) if x.get("segment") else None)
        assert keys[qid] == content_key(q, "ppl", presets.get(presets.DEFAULT), frames)
