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
    from model_server.backends import hf

    real = hf.HFBackend._sum_logprobs
    monkeypatch.setattr(hf.HFBackend, "_sum_logprobs",
                        staticmethod(lambda *a: real(*a) - 0.01))
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
