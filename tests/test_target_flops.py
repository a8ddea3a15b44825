"""bench/target_flops.py: a throughput target's MFU, computed without a device."""

from __future__ import annotations

import re
import sys


def test_target_flops_counts_the_mix_and_the_mfu_it_needs(monkeypatch, capsys):
    from bench import target_flops  # in process: this worker has torch and transformers loaded

    monkeypatch.setattr(sys, "argv", ["target_flops.py", "--preset", "small", "--mix", "24",
                                      "--rate", "30"])
    assert target_flops.main() == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (\d+ images?|8 frames) \| ([\d.]+)% \| (\d+) \| (\d+) \|$", out, re.M)
    assert {r[0] for r in rows} >= {"1 image", "8 frames"}
    assert abs(sum(float(r[1]) for r in rows) - 100) < 0.5  # every question in one row
    by_kind = {r[0]: (int(r[2]), int(r[3])) for r in rows}
    # eight frames are eight images' tokens: longer prompts, more FLOPs than one image
    assert by_kind["8 frames"][0] > 4 * by_kind["1 image"][0]
    assert by_kind["8 frames"][1] > by_kind["1 image"][1]
    need = re.search(r"30 questions/s needs (\d+) TFLOP/s of model compute: (\d+)% MFU", out)
    assert need, out
