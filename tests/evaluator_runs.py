"""Shared pieces of the evaluator's end-to-end tests: sample data, CLI arguments, outputs."""

from __future__ import annotations

from pathlib import Path

from evaluator.data import sample_data


def write_sample(root: Path, per_dim: int, seed: int = 1):
    """Sample SEED-Bench-2 data in `root`; returns (annotation file, --media-root args)."""
    ann = sample_data.write_v2(root, seed=seed, per_dim=per_dim)
    return ann, ["--media-root", f"cc3m={root / 'cc3m'}",
                 "--media-root", f"SEED-Bench v2={root / 'seed_bench_v2'}"]


def run_args(ann, roots, model, out, *extra, connect_timeout_s: float = 5):
    return ["run", "--annotations", str(ann), *roots, "--model", model, "--out", str(out),
            "--connect-timeout-s", str(connect_timeout_s), *extra]


def files(out: Path) -> tuple[str, str]:
    """The two outputs a resumed run must reproduce byte for byte."""
    return (out / "summary.json").read_text(), (out / "submission.jsonl").read_text()
