"""`seedbench-model-server parity`: the served path against the naive per-option reference,
on tiny LLaVA (llava-hf layout) and tiny Qwen2-VL, and a deliberately wrong served path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from model_server import cli
from model_server.backends import reference_prompt
from serving.processes import ROOT, child_env
from tests.tiny_models import tiny_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    return {arch: tiny_model(arch, base) for arch in ("llava_hf", "qwen2_vl")}


def parity(capsys, *args) -> tuple[int, str]:
    try:
        rc = cli.main(["parity", *args])
    except SystemExit as exc:
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def test_parity_passes_on_tiny_llava_from_the_command_line(models):
    """As a user runs it: the real CLI in its own process, built-in sample questions."""
    r = subprocess.run([sys.executable, "-m", "model_server.cli", "parity", "--model",
                        str(models["llava_hf"]), "--preset", "llava-1.5", "--n", "12"],
                       cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert "preset llava-1.5 (reference)" in r.stdout and "dtype float32" in r.stdout
    assert "token counts equal: 48/48" in r.stdout and "predictions equal: 12/12" in r.stdout
    assert "tolerance 0.0001 (float32): PASS" in r.stdout


@pytest.mark.parametrize("preset, setting", [("chat-mean", "packing=false"),
                                             ("qwen-vl-chat", "packing=true")])
def test_parity_passes_on_tiny_qwen2_vl(models, capsys, preset, setting):
    rc, out = parity(capsys, "--model", str(models["qwen2_vl"]), "--preset", preset, "--n", "10",
                     "--backend-arg", setting, "--batch", "4")
    assert rc == 0, out
    assert "questions compared: 10 of 10" in out and "PASS" in out
    assert ("packed" if setting == "packing=true" else "cache copy") in out


def test_parity_fails_when_the_served_window_is_off_by_one(models, capsys, monkeypatch):
    """A served path that scores one token too many (the window shifted) is caught: the
    counts differ and the check exits 1."""
    real = reference_prompt.last_tokens
    monkeypatch.setattr(reference_prompt, "last_tokens", lambda seq, n, why: real(seq, n + 1, why))
    rc, out = parity(capsys, "--model", str(models["llava_hf"]), "--preset", "llava-1.5",
                     "--n", "6")
    assert rc == 1, out
    assert "token counts equal: 0/24" in out and "FAIL" in out


def test_parity_fails_when_the_served_scores_drift(models, capsys, monkeypatch):
    """Equal counts but different numbers (the served sum nudged): over the tolerance, exit 1."""
    from model_server.backends import hf_reference

    real = hf_reference.sum_logprobs
    monkeypatch.setattr(hf_reference, "sum_logprobs", lambda *a: real(*a) - 0.01)
    rc, out = parity(capsys, "--model", str(models["llava_hf"]), "--preset", "chat-mean",
                     "--n", "4", "--backend-arg", "prefix_sharing=false")
    assert rc == 1, out
    assert "token counts equal: 16/16" in out and "FAIL" in out


def test_parity_refuses_a_preset_the_model_cannot_do_and_bad_input(models, capsys, tmp_path):
    rc, out = parity(capsys, "--model", str(models["qwen2_vl"]), "--preset", "llava-1.5")
    assert rc == 2 and "would refuse" in out and "image_preprocessing" in out
    rc, out = parity(capsys, "--model", str(models["qwen2_vl"]), "--preset", "nope")
    assert rc == 2 and "unknown preset 'nope'" in out
    rc, out = parity(capsys, "--model", str(models["qwen2_vl"]), "--annotations",
                     str(tmp_path / "missing.json"))
    assert rc == 2 and "questions:" in out and "missing.json" in out
    rc, out = parity(capsys, "--model", str(tmp_path / "nowhere"))
    assert rc == 2 and "nowhere: not a model directory" in out
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    rc, out = parity(capsys, "--model", str(tmp_path / "broken"))
    assert rc == 2 and "cannot load it" in out and "Traceback" not in out


CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def recipe_tasks():
    """Recipes no shipped preset sends, so the parity command never meets them: the chat
    template with squashed pixels (end-of-turn on and off), and a raw prompt written with the
    template's marker, tokenised piece by piece, scored by the length difference."""
    from PIL import Image

    from model_server.backends.base import ScoreTask
    from model_server.backends.score_recipe import (
        LENGTH_DIFFERENCE,
        SPLIT_AT_IMAGES,
        SQUASH,
        TEMPLATE_MARKER,
        ImagePrep,
        Recipe,
    )

    ims = [Image.new("RGB", (48, 30), (200, 10, 10)), Image.new("RGB", (30, 50), (10, 10, 200))]
    options = ["red", "a blue sky", "green", "none of them"]
    squash = ImagePrep(SQUASH, 0, *CLIP)
    return [
        ScoreTask("chat", "What colour? <img> and <img>", ims, options, image_prep=squash),
        ScoreTask("chat-eot", "What colour?", ims, options, include_end_of_turn=True,
                  image_prep=squash),
        ScoreTask("raw", "Picture: <img> then <img>. Colour:", ims, options, raw_prompt=True,
                  recipe=Recipe(LENGTH_DIFFERENCE, TEMPLATE_MARKER, SPLIT_AT_IMAGES, " ")),
    ]


def test_every_strategy_equals_the_naive_reference_on_other_recipes(models):
    from model_server.backends import create
    from model_server.parity_reference import NaiveScorer

    tasks = recipe_tasks()
    naive = None
    for setting in ({"prefix_sharing": "false"}, {"packing": "false"}, {"packing": "true"}):
        backend = create("hf", str(models["llava_hf"]), **setting)
        naive = naive or NaiveScorer(backend.model, backend.inputs.processor, backend.model.config)
        served = backend.score([backend.prepare(t) for t in tasks])
        for task, got in zip(tasks, served, strict=True):
            want = naive.score(task)
            assert [s.num_tokens for s in got] == [n for _, n in want], (task.request_id, setting)
            assert [s.logprob_sum for s in got] == pytest.approx([v for v, _ in want], abs=1e-4)
