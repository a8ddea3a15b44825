"""The committed demo model has learned: a pipeline regression (prompt rendering, image
placement, preprocessing, option scoring, answer mapping, metrics) drops it to chance.

Served over gRPC by a real model server process and evaluated by the evaluator CLI on
a fresh seed of the sample data (the model was trained on seed TRAIN_SEED).
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from serving.processes import ROOT
from tests.evaluator_runs import run, write_sample
from tests.procs import model_server

MODEL = ROOT / "models" / "demo-llava"
LEARNABLE = range(1, 25)  # dims 25-27 need image generation, which LLaVA has not
FRESH_SEED = 77


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _train_module():
    return _load("models/train_demo.py", "train_demo")


@pytest.mark.slow
def test_demo_model_answers_a_fresh_sample_over_grpc(tmp_path):
    assert FRESH_SEED != _train_module().TRAIN_SEED
    ann, roots = write_sample(tmp_path / "data", per_dim=3, seed=FRESH_SEED)
    out = tmp_path / "out"
    # One torch thread: on a shared machine two spin-waiting OpenMP threads are far slower.
    serve = ["--backend", "hf", "--model", str(MODEL), "--max-batch", "16",
             "--backend-arg", "threads=1"]
    with model_server(serve) as (target, _):
        assert not run(ann, roots, target, out, level="L2").all_failed
    dims = json.loads((out / "summary.json").read_text())["dimensions"]
    accs = {d: dims[str(d)]["accuracy"] for d in LEARNABLE}
    assert all(dims[str(d)]["total"] == 3 and dims[str(d)]["errors"] == 0 for d in LEARNABLE)
    mean = sum(accs.values()) / len(accs)
    assert mean > 50.0, f"learnable-dimension accuracy {mean:.1f}% (chance 25%): {accs}"


@pytest.mark.slow
def test_training_is_deterministic(tmp_path):
    """Two short trainings from scratch write bit-identical weights."""
    train = _train_module().train
    a = train(tmp_path / "a", steps=3, per_dim=2, batch_size=8, work=tmp_path, log_every=10**6)
    b = train(tmp_path / "b", steps=3, per_dim=2, batch_size=8, work=tmp_path, log_every=10**6)
    assert a["weights_sha256"] == b["weights_sha256"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == \
        (tmp_path / "b" / "model.safetensors").read_bytes()


def test_demo_check_variants_keep_each_answer_with_its_choice(tmp_path):
    """The consistency report's shuffled files: same questions, each answer still its choice."""
    check = _load("bench/demo_check.py", "demo_check")
    ann, _ = write_sample(tmp_path, per_dim=4, seed=FRESH_SEED)
    doc = json.loads(ann.read_text())

    def right(q):
        return q[f"choice_{q['answer'].lower()}"]

    shuffled = check.shuffled_options(doc, seed=1)
    pairs = list(zip(doc["questions"], shuffled["questions"], strict=True))
    assert all(right(a) == right(b) for a, b in pairs)
    assert any(a["answer"] != b["answer"] for a, b in pairs)
    reordered = check.shuffled_questions(doc, seed=1)["questions"]
    assert [q["question_id"] for q in reordered] != [q["question_id"] for q in doc["questions"]]
    assert sorted(map(json.dumps, reordered)) == sorted(map(json.dumps, doc["questions"]))
