"""The report of a full 27-dimension run at 80 columns, on a real terminal and piped to a file:
every dimension name, accuracy and interval, and every group's averages, legible in full.

A terminal is a real pseudo-terminal (the pty module) sized 80 columns; "piped" is stdout
to a file with no COLUMNS set (rich then assumes 80). Nothing may be cut ("…"), and no
line may be wider than the terminal.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from rich.cells import cell_len

from evaluator import RunConfig, evaluate
from evaluator.data import benchmarks as B
from evaluator.data import sample_data
from evaluator.reports import numbers
from serving.processes import ROOT, child_env
from tests.procs import model_server

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\]8;[^\x1b]*\x1b\\")
WIDTH = 80


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_clip):
    root = tmp_path_factory.mktemp("narrow")
    ann = sample_data.write_v2(root / "data", seed=4, per_dim=3)
    quiet = ["--log-level", "WARNING"]
    with model_server(["--backend", "synthetic", "--model", "narrow-model", *quiet]) as (t, _):
        result = evaluate(RunConfig(annotations=ann, media_roots=sample_data.media_roots(root / "data"),
                                    model=t, clip=tiny_clip, out=root / "out"))
    assert result.summary.counts.answered == 27 * 3 and not result.partial
    return root / "out"


def on_a_terminal(*args: str) -> str:
    """The command's output on an 80-column pseudo-terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, WIDTH, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "evaluator.cli", *args], cwd=ROOT,
                            env=child_env(COLUMNS=str(WIDTH), TERM="xterm-256color"),
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal (EIO)
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(60) == 0
    return ANSI.sub("", b"".join(chunks).decode("utf-8")).replace("\r\n", "\n")


def piped(*args: str, tmp_path) -> str:
    """The command's output written to a file, with no terminal width to go by."""
    env = {k: v for k, v in child_env().items() if k != "COLUMNS"}
    path = tmp_path / "report.txt"
    with open(path, "w") as f:
        assert subprocess.run([sys.executable, "-m", "evaluator.cli", *args], cwd=ROOT, env=env,
                              stdout=f, stderr=subprocess.PIPE, timeout=60).returncode == 0
    return path.read_text()


def check_legible(text: str, summary: dict) -> None:
    lines = text.splitlines()
    assert "…" not in text, "something was cut"
    assert max(cell_len(x) for x in lines) <= WIDTH
    for d, name in B.SEED_BENCH_2.dimensions.items():
        s = summary["dimensions"][str(d)]
        acc, ci = numbers.pct(s["accuracy"]), numbers.ci(s["ci95"])
        row = re.compile(rf"│\s+{d} │ {re.escape(name)}\s+│\s+{re.escape(acc)} │\s+{re.escape(ci)} │")
        assert any(row.search(x) for x in lines), f"dimension {d} {name}: {acc} {ci} not in one row"
    for label, g in summary["averages"].items():
        task, weighted = numbers.pct(g["task"]), numbers.pct(g["all"])
        row = re.compile(rf"│ {re.escape(label)}\s+│\s+{re.escape(task)} │.*│\s+{re.escape(weighted)} │")
        assert any(row.search(x) for x in lines), f"group {label}: {task} / {weighted}"


def test_report_at_80_columns_on_a_terminal_and_piped(full_run, tmp_path):
    summary = json.loads((full_run / "summary.json").read_text())
    check_legible(on_a_terminal("report", str(full_run)), summary)
    check_legible(piped("report", str(full_run), tmp_path=tmp_path), summary)


def test_compare_at_80_columns_keeps_names_and_numbers_whole(full_run, tmp_path):
    text = piped("compare", str(full_run), str(full_run), "--reference", "seed2-llava-1.5-7b",
                 tmp_path=tmp_path)
    assert "…" not in text and max(cell_len(x) for x in text.splitlines()) <= WIDTH
    summary = json.loads((full_run / "summary.json").read_text())
    for d, name in B.SEED_BENCH_2.dimensions.items():
        acc = numbers.pct(summary["dimensions"][str(d)]["accuracy"])
        assert re.search(rf"│\s+{d} │ {re.escape(name)}\s+│\s+{re.escape(acc)} \[", text), name
