"""L3 (dims 25-27) over real gRPC: tiny Janus / scripted model servers and the tiny CLIP server."""

import hashlib
import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from evaluator import RunFailed, load_run
from evaluator.data import sample_data
from evaluator.run import l3
from serving.processes import ROOT, child_env, free_port
from tests.evaluator_runs import files, kill_after, run, run_argv, write_sample
from tests.procs import model_server
from tests.tiny_models import tiny_model

QUIET = ["--log-level", "WARNING"]


@pytest.fixture(scope="module")
def clip(tiny_clip):
    return tiny_clip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("data"), per_dim=4)


@pytest.fixture(scope="module")
def janus(tmp_path_factory):
    model = tiny_model("janus", tmp_path_factory.mktemp("models"))
    with model_server(["--backend", "janus", "--model", str(model), *QUIET]) as (target, _):
        yield target




def summary(out):
    return json.loads((out / "summary.json").read_text())


def stored(out, dims=(25, 26, 27)):
    """The answered L3 questions with their stored records, read through the API."""
    return {q.question_id: {"dim": q.dimension, "prediction": q.prediction, "answer": q.answer,
                            "scores": q.evidence}
            for q in load_run(out).questions(evidence=dims)
            if q.status == "ok" and q.dimension in dims}


# -- tiny Janus: the whole benchmark, L3 included -------------------------------------------


@pytest.mark.timeout(600)  # 108 questions through tiny Janus: ~85 s alone, far more on a loaded machine
def test_janus_all_levels_with_clip(data, janus, clip, tmp_path):
    ann, roots = data
    assert not run(ann, roots, janus, tmp_path, clip=clip).partial
    s = summary(tmp_path)
    for d in ("25", "26", "27"):
        assert s["dimensions"][d]["total"] == 4 and s["dimensions"][d]["errors"] == 0
        assert s["dimensions"][d]["accuracy"] is not None
    assert s["counts"] == {"selected": 108, "answered": 108, "errors": 0, "unparsed": 0, "pending": 0,
                           "skipped_invalid": 0, "skipped_unsupported": 0}
    assert s["averages"]["L3"] is not None and s["averages"]["P3"] is not None
    assert s["averages"]["L3"]["dims_answered"] == 27
    assert s["clip"]["name"] == "tiny" and len(s["clip"]["fingerprint"]) == 16
    assert s["notes"] == []
    rows = stored(tmp_path)
    assert len(rows) == 12
    generated = 0
    for qid, r in rows.items():
        sc = r["scores"]
        assert sc["clip"] == s["clip"]["fingerprint"]
        if r["dim"] == 27:
            assert sc["text_prediction"] in "ABCD"
            if sc["text_prediction"] != r["answer"]:
                assert sc["generated"] is None and r["prediction"] == sc["text_prediction"]
                assert not (tmp_path / "generated" / f"{qid}.png").exists()
                continue
        g = sc["generated"]
        assert g["seed"] == l3.seed_for(qid)
        assert g["input_images"] == (3 if r["dim"] == 26 else 0)
        path = tmp_path / g["file"]
        assert path == tmp_path / "generated" / f"{qid}.png"
        data_bytes = path.read_bytes()
        assert hashlib.sha256(data_bytes).hexdigest() == g["sha256"]
        with Image.open(io.BytesIO(data_bytes)) as im:
            assert im.format == "PNG" and im.size[0] > 0
            im.load()
        assert len(sc["similarities"]) == 4
        best = max(range(4), key=lambda i: (sc["similarities"][i], -i))
        assert sc["image_prediction"] == "ABCD"[best] == r["prediction"]
        generated += 1
    assert generated >= 8
    # A rerun asks nothing and writes the same files.
    before = files(tmp_path)
    assert run(ann, roots, janus, tmp_path, clip=clip).run.todo == 0
    assert json.loads((tmp_path / "run.json").read_text())["todo"] == 0
    assert files(tmp_path) == before


def test_killed_l3_run_resumes_to_identical_outputs(data, janus, clip, tmp_path):
    ann, roots = data
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    args = ["--clip", clip, "--dimensions", "24,25,26,27", "--in-flight", "1"]
    cmd = [sys.executable, "-m", "evaluator.cli"]
    ev = subprocess.Popen([*cmd, *run_argv(ann, roots, janus, killed, *args)],
                          env=child_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    partial = kill_after(ev, killed, 6)  # dim 24 done, L3 under way
    assert 6 <= partial < 16
    for out in (killed, clean):
        subprocess.run([*cmd, *run_argv(ann, roots, janus, out, *args[:-2])],
                       env=child_env(), check=True, capture_output=True, timeout=120)
    assert json.loads((killed / "run.json").read_text())["todo"] == 16 - partial
    assert files(killed) == files(clean)
    assert summary(killed)["averages"]["P3"] is not None
    gen = sorted(p.name for p in (clean / "generated").iterdir())
    assert sorted(p.name for p in (killed / "generated").iterdir()) == gen
    for name in gen:
        assert (killed / "generated" / name).read_bytes() == (clean / "generated" / name).read_bytes()


# -- scripted model: each rule of dims 25-27 in isolation ----------------------------------


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    """Hand-made L3 questions on sample-data shapes, and a script steering the model."""
    d = tmp_path_factory.mktemp("scripted")
    pool = sample_data.Pool(d)
    src = "SEED-Bench v2"
    img = {(s, c): pool.shape(src, s, c) for s in ("circle", "square", "star", "triangle")
           for c in ("red", "blue")}
    opts = [img["circle", "red"], img["square", "red"], img["star", "blue"],
            img["triangle", "blue"]]
    abs_path = {rel: str(d / "seed_bench_v2" / rel) for rel in img.values()}

    def question(qid, dim, text, answer, data_id, choices=("1.jpg", "2.jpg", "3.jpg", "4.jpg")):
        return {"question_id": qid, "question_type_id": dim, "question": text,
                "choice_a": choices[0], "choice_b": choices[1], "choice_c": choices[2],
                "choice_d": choices[3], "answer": answer, "data_id": data_id,
                "data_source": src, "level": "L3", "version": "v2",
                "subpart": "Image & Text Generation" if dim == 27 else "Image Generation",
                "data_type": "Image Generation"}

    texts = ("A red circle.", "A red square.", "A blue star.", "A blue triangle.")
    frames = [img["circle", "blue"], img["square", "blue"], img["star", "red"]]
    questions = [
        # dim 25: the generated image is option D (answer D) / option A (answer C).
        question("t2i_right", 25, "Case t2i_right: draw.", "D", opts),
        question("t2i_wrong", 25, "Case t2i_wrong: draw.", "C", opts),
        # dim 26: the model copies its 3rd input image, which is also option C.
        question("next_copy", 26, "Case next_copy: what comes next?", "C",
                 [*frames, opts[0], opts[1], frames[2], opts[3]]),
        # dim 27: (text, image) right/right, right/wrong, wrong/right.
        question("tti_both", 27, "Case tti_both: draw a red square.", "B", opts, texts),
        question("tti_image_wrong", 27, "Case tti_image_wrong: draw a red square.", "B", opts,
                 texts),
        question("tti_text_wrong", 27, "Case tti_text_wrong: draw a red square.", "B", opts,
                 texts),
    ]
    ann = d / "l3.json"
    ann.write_text(json.dumps({"questions": questions}))
    script = {
        "name": "scripted-l3",
        "score": {"tti_both": 1, "tti_image_wrong": 1, "tti_text_wrong": 0},
        "image": {"t2i_right": f"file:{abs_path[opts[3]]}",
                  "t2i_wrong": f"file:{abs_path[opts[0]]}",
                  "next_copy": "copy_input:2",
                  "tti_both": f"file:{abs_path[opts[1]]}",
                  "tti_image_wrong": f"file:{abs_path[opts[2]]}",
                  "tti_text_wrong": f"file:{abs_path[opts[1]]}"},
        "log": "calls.jsonl",
    }
    path = d / "script.json"
    path.write_text(json.dumps(script))
    roots = {"SEED-Bench v2": d / "seed_bench_v2"}
    with model_server(["--backend", "scripted", "--model", str(path), *QUIET]) as (target, _):
        yield ann, roots, target, d / "calls.jsonl"


def test_scripted_rules_of_each_dimension(scripted, clip, tmp_path):
    ann, roots, model, log = scripted
    run(ann, roots, model, tmp_path, clip=clip)
    rows = stored(tmp_path)
    pred = {qid: r["prediction"] for qid, r in rows.items()}
    assert pred == {"t2i_right": "D", "t2i_wrong": "A", "next_copy": "C", "tti_both": "B",
                    "tti_image_wrong": "C", "tti_text_wrong": "A"}
    for qid in ("t2i_right", "t2i_wrong", "next_copy", "tti_both"):
        sims = rows[qid]["scores"]["similarities"]
        k = "ABCD".index(pred[qid])
        assert sims[k] == pytest.approx(1.0, abs=1e-5)
        assert max(s for i, s in enumerate(sims) if i != k) < 0.999
    assert rows["next_copy"]["scores"]["generated"]["input_images"] == 3
    both, img_wrong, txt_wrong = (rows[k]["scores"] for k in
                                  ("tti_both", "tti_image_wrong", "tti_text_wrong"))
    assert (both["text_prediction"], both["image_prediction"]) == ("B", "B")
    assert (img_wrong["text_prediction"], img_wrong["image_prediction"]) == ("B", "C")
    assert (txt_wrong["text_prediction"], txt_wrong["image_prediction"]) == ("A", None)
    assert txt_wrong["generated"] is None and txt_wrong["similarities"] is None
    # The text ranking goes out without images (they are the answers); no image is
    # generated for a question whose text is wrong.
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    gen = {c["request_id"] for c in calls if c["call"] == "GenerateImage"}
    assert gen == {"t2i_right", "t2i_wrong", "next_copy", "tti_both", "tti_image_wrong"}
    scored = {c["request_id"] for c in calls if c["call"] == "Score"}
    assert scored == {"tti_both", "tti_image_wrong", "tti_text_wrong"}
    assert not (tmp_path / "generated" / "tti_text_wrong.png").exists()
    s = summary(tmp_path)
    assert [s["dimensions"][d]["correct"] for d in ("25", "26", "27")] == [1, 1, 1]
    assert [s["dimensions"][d]["total"] for d in ("25", "26", "27")] == [2, 1, 3]
    assert s["averages"]["P3"]["task"] == pytest.approx((50 + 100 + 100 / 3) / 3, abs=1e-3)
    assert s["averages"]["L1"] is None and s["averages"]["L3"] is not None
    sub = [json.loads(x) for x in (tmp_path / "submission.jsonl").read_text().splitlines()]
    assert {x["question_id"]: x["prediction"] for x in sub} == pred
    # samples.jsonl: each L3 line carries its stored generation record.
    lines = {x["question_id"]: x
             for x in map(json.loads, (tmp_path / "samples.jsonl").read_text().splitlines())}
    assert {q: x["generation"] for q, x in lines.items()} == {q: r["scores"] for q, r in rows.items()}
    assert all(x["options"] is None and x["prediction"] == pred[q] for q, x in lines.items())


# -- when L3 cannot run ---------------------------------------------------------------------


def l3_is_na(s, note_part):
    for d in ("25", "26", "27"):
        assert s["dimensions"][d]["total"] == 0 and s["dimensions"][d]["accuracy"] is None
    assert s["averages"]["L3"] is None and s["averages"]["P3"] is None
    assert s["counts"]["skipped_unsupported"] == 12
    assert any(note_part in n for n in s["notes"]), s["notes"]
    assert s["clip"] is None


def test_without_clip_l3_is_na(data, scripted, tmp_path):
    ann, roots = data
    model = scripted[2]  # advertises generate_image
    result = run(ann, roots, model, tmp_path, dimensions=[1, 25, 26, 27])
    assert result.summary.groups["L3"].status == "n/a"
    s = summary(tmp_path)
    l3_is_na(s, l3.NOTE_NO_CLIP)
    assert s["averages"]["L1"] is not None


def test_model_without_image_generation_l3_is_na(data, clip, tmp_path):
    ann, roots = data
    with model_server(["--backend", "synthetic", "--model", "m1", "--backend-arg",
                       "generate_image=false", *QUIET]) as (model, _):
        result = run(ann, roots, model, tmp_path, clip=clip, dimensions=[1, 25, 26, 27])
        assert any("does not advertise generate_image" in w for w in result.warnings)
        l3_is_na(summary(tmp_path), "does not advertise generate_image")
        out2 = tmp_path / "neither"
        run(ann, roots, model, out2, dimensions=[1, 25, 26, 27])
        l3_is_na(summary(out2), l3.NOTE_NEITHER)


def test_unreachable_clip_server_is_a_clear_error(data, scripted, tmp_path):
    ann, roots = data
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(RunFailed, match=dead):
        run(ann, roots, scripted[2], tmp_path, clip=dead, dimensions=[25], connect_timeout_s=1)


def test_l3_run_imports_no_torch(scripted, clip, tmp_path):
    ann, roots, model, _ = scripted
    args = run_argv(ann, roots, model, tmp_path, "--clip", clip)
    code = "\n".join([
        "import sys", "from evaluator import cli", f"rc = cli.main({args!r})",
        "bad = [m for m in ('torch', 'transformers', 'model_server', 'open_clip')"
        " if m in sys.modules]",
        "print('BAD', bad)", "sys.exit(3 if bad else rc)"])
    r = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BAD []" in r.stdout and summary(tmp_path)["dimensions"]["27"]["total"] == 3
