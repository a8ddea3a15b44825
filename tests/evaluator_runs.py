"""Shared pieces of the evaluator's end-to-end tests: sample data, runs through the API, outputs.

Runs go through the public API (evaluator.RunConfig / evaluate); `run_argv` is for the
tests of the command line itself, and is the one place a RunConfig's settings become flags.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from evaluator import RunConfig, RunResult, evaluate
from evaluator.data import sample_data
from evaluator.results.store import Store


def write_sample(root: Path, per_dim: int, seed: int = 1):
    """Sample SEED-Bench-2 data in `root`; returns (annotation file, media roots)."""
    ann = sample_data.write_v2(root, seed=seed, per_dim=per_dim)
    return ann, sample_data.media_roots(root)


def config(ann, roots, model, out, **settings) -> RunConfig:
    settings.setdefault("connect_timeout_s", 5)
    return RunConfig(annotations=ann, media_roots=roots, model=model, out=out, **settings)


__all__ = ["config", "evaluate", "files", "kill_after", "run", "run_argv", "write_sample"]


def run(ann, roots, model, out, **settings) -> RunResult:
    """Evaluate through the library, as a notebook would."""
    return evaluate(config(ann, roots, model, out, **settings))


def run_argv(ann, roots, model, out, *extra, connect_timeout_s: float = 5) -> list[str]:
    """`seedbench run` arguments, for tests of the command line itself."""
    media = [x for key, path in roots.items()
             for x in ("--media-root", f"{key}={path}" if key else str(path))]
    return ["run", "--annotations", str(ann), *media, "--model", model, "--out", str(out),
            "--connect-timeout-s", str(connect_timeout_s), *extra]


def files(out: Path) -> tuple[str, str]:
    """The two outputs a resumed run must reproduce byte for byte."""
    return (out / "summary.json").read_text(), (out / "submission.jsonl").read_text()


def kill_after(proc: subprocess.Popen, out: Path, answers: int, timeout_s: float = 60) -> int:
    """SIGKILL an evaluation process once its store holds `answers` answers (polled); returns
    how many it held when killed."""
    try:
        deadline = time.monotonic() + timeout_s
        while Store.count_answers(out) < answers:
            assert proc.poll() is None, "the evaluation ended before it was killed"
            assert time.monotonic() < deadline, f"fewer than {answers} answers in {timeout_s} s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    return Store.count_answers(out)
