"""SEED-Bench-1 end to end over gRPC: all 12 dimensions through each of the two video sources.

The sample data (`seedbench sample-data --format v1`) holds the official layouts:
raw webm/mp4/avi videos under their three roots and the 8-frame folders keyed by
question id. A tiny LLaVA served with the hf backend answers both runs.
"""

import json
import shutil
import subprocess
import sys

import pytest

from evaluator import load_run
from evaluator.data import sample_data
from evaluator.run.session import FRAME_CACHE, Reporter
from serving.processes import ROOT, child_env
from tests.evaluator_runs import config, files, run_argv
from tests.evaluator_runs import evaluate as evaluate_config
from tests.procs import model_server
from tests.tiny_models import tiny_model
from tests.videos import write_indexed_video

PER_DIM = 2
QUIET = ["--log-level", "WARNING"]


class Notes(Reporter):
    """Keeps what a run reports (which source each video dimension reads)."""

    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(text)


def run(ann, roots, model, out):
    """Evaluate through the API; returns (result, what it reported)."""
    notes = Notes()
    # generous connect timeout: CPUs are shared in CI
    result = evaluate_config(config(ann, roots, model, out, connect_timeout_s=60), notes)
    return result, "\n".join(notes.lines)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("v1")
    ann = sample_data.write_v1(root, seed=2, per_dim=PER_DIM)
    raw = sample_data.media_roots(root, v1=True)
    frames = {"image": raw["image"], "frames": root / "v1_video"}
    return ann, frames, raw


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    model = tiny_model("llava", tmp_path_factory.mktemp("models"))
    with model_server(["--backend", "hf", "--model", str(model), *QUIET]) as (target, _):
        yield target


def option_scores(out):
    return {q.question_id: q.evidence for q in load_run(out).questions(evidence=True)
            if q.dimension >= 10}


@pytest.mark.slow
def test_all_twelve_dimensions_through_each_video_source(data, llava, tmp_path):
    ann, frames, raw = data
    by_frames, by_raw = tmp_path / "frames", tmp_path / "raw"
    assert "video dimension 11: 8-frame folders" in run(ann, frames, llava, by_frames)[1]
    assert "video dimension 11: raw videos, epic-kitchens=" in run(ann, raw, llava, by_raw)[1]
    for out in (by_frames, by_raw):
        s = json.loads((out / "summary.json").read_text())
        assert s["benchmark"] == "SEED-Bench-1"
        assert s["counts"]["answered"] == 12 * PER_DIM and s["counts"]["errors"] == 0
        assert all(s["dimensions"][str(d)]["total"] == PER_DIM for d in range(1, 13))
        assert all(s["averages"][g] is not None for g in ("Image", "Video", "All"))
    run_raw = json.loads((by_raw / "run.json").read_text())
    assert run_raw["videos_decoded"] == 3 * PER_DIM  # one decode per video question
    assert all("raw videos" in v for v in run_raw["video_sources"].values())
    assert not (by_frames / FRAME_CACHE).exists()
    # The same frames reached the model (exact equality is shown with the synthetic model
    # below: a CPU model's batching moves the last float digits).
    a, b = option_scores(by_frames), option_scores(by_raw)
    assert a.keys() == b.keys() and len(a) == 3 * PER_DIM
    for qid in a:
        sa, sb = a[qid], b[qid]
        assert [x["num_tokens"] for x in sa] == [x["num_tokens"] for x in sb]
        assert [x["logprob_sum"] for x in sa] == pytest.approx([x["logprob_sum"] for x in sb],
                                                               abs=1e-3)


def test_both_sources_send_identical_frames(data, tmp_path):
    """The synthetic model hashes the image bytes it gets: equal scores mean equal frames."""
    ann, frames, raw = data
    by_frames, by_raw = tmp_path / "frames", tmp_path / "raw"
    with model_server(["--backend", "synthetic", "--model", "m1", *QUIET]) as (target, _):
        run(ann, frames, target, by_frames)
        run(ann, raw, target, by_raw)
        assert option_scores(by_frames) == option_scores(by_raw)
        assert files(by_frames)[1] == files(by_raw)[1]  # identical submission.jsonl
        # Answers lost (store deleted), frame cache kept: all asked again, nothing decoded.
        before = files(by_raw)
        (by_raw / "results.sqlite").unlink()
        run(ann, raw, target, by_raw)
    run_again = json.loads((by_raw / "run.json").read_text())
    assert run_again["todo"] == 12 * PER_DIM and run_again["videos_decoded"] == 0
    assert files(by_raw) == before


def test_broken_or_missing_video_is_that_questions_error(data, tmp_path):
    """A missing video is refused up front, an undecodable one fails alone; the rest run."""
    ann, _, raw = data
    root = ann.parent
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    doc = json.loads((copy / ann.name).read_text())
    by_id = {q["question_id"]: q for q in doc["questions"]}
    by_id["v10_0"]["data_id"] = "404.webm"
    (copy / "ssv2" / by_id["v10_1"]["data_id"]).write_bytes(b"\x1a\x45\xdf\xa3 truncated")
    (copy / ann.name).write_text(json.dumps(doc))
    roots = {key: copy / path.relative_to(root) for key, path in raw.items()}
    with model_server(["--backend", "synthetic", "--model", "m1", *QUIET]) as (target, _):
        result, _ = run(copy / ann.name, roots, target, tmp_path / "out")
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["counts"]["skipped_invalid"] == 1 and s["counts"]["errors"] == 1
    assert s["counts"]["answered"] == 12 * PER_DIM - 2
    invalid = [json.loads(x) for x in (tmp_path / "out" / "invalid.jsonl").read_text().splitlines()]
    assert invalid[0]["question_id"] == "v10_0" and "404.webm" in invalid[0]["reason"]
    errors = {q.question_id: q.error.message for q in result.questions() if q.status == "error"}
    assert list(errors) == ["v10_1"] and by_id["v10_1"]["data_id"] in errors["v10_1"]


def test_frame_cache_is_bounded_to_the_sampled_frames(tmp_path):
    """A longer video still yields exactly 8 cached frames per clip (nothing else kept)."""
    from evaluator.data.video_frames import FrameCache, VideoClip

    video = write_indexed_video(tmp_path / "long.mp4", 240, 24)
    cache = FrameCache(tmp_path / "cache")
    paths = cache.frames(VideoClip(video, "long.mp4", "seconds", (2.0, 8.0)))
    assert len(paths) == 8 and len(list((tmp_path / "cache" / "frames").iterdir())) == 8


def test_raw_video_run_imports_no_torch(data, tmp_path):
    """Decoding raw videos keeps the evaluator torch-free (PyAV only)."""
    ann, _, raw = data
    argv = run_argv(ann, raw, "{target}", tmp_path, connect_timeout_s=60)
    body = (f"from evaluator import cli\nrc = cli.main({argv!r})"
            "\nimport sys\nbad = [m for m in ('torch', 'transformers', 'model_server') "
            "if m in sys.modules]\nprint('BAD', bad, 'av' in sys.modules)\n"
            "sys.exit(3 if bad else rc)")
    with model_server(["--backend", "synthetic", "--model", "m1", *QUIET]) as (target, _):
        r = subprocess.run([sys.executable, "-c", body.replace("{target}", target)],
                           env=child_env(), capture_output=True, text=True, timeout=120,
                           cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BAD [] True" in r.stdout
    assert json.loads((tmp_path / "run.json").read_text())["videos_decoded"] == 3 * PER_DIM
