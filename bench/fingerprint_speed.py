"""How long a model's fingerprint takes: sha256 throughput over every weight byte, a first
start (nothing cached), and a restart (the per-file digests cached beside the model).

    python bench/fingerprint_speed.py [--model DIR | --gb 1.5 --shards 1] [--threads 0]

Without --model it writes random weight files of --gb gigabytes in total to a temporary
folder (just written, so they are in the page cache: the numbers are hashing, not disk
reading; pass --model on a cold disk to see the disk). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.one_line_errors import run  # noqa: E402
from model_server import fingerprint as F  # noqa: E402

CHUNK = 64 << 20


def write_weights(folder: Path, gb: float, shards: int) -> None:
    per = int(gb * 1e9) // shards
    block = os.urandom(CHUNK)
    for k in range(shards):
        with (folder / f"model-{k:05d}-of-{shards:05d}.safetensors").open("wb") as f:
            left = per
            while left > 0:
                f.write(block[:min(left, CHUNK)])
                left -= CHUNK
    (folder / "config.json").write_text('{"model_type": "llava"}')


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="a model directory (default: random weights in a temp folder)")
    p.add_argument("--gb", type=float, default=1.5, help="gigabytes of random weights")
    p.add_argument("--shards", type=int, default=1, help="weight files they are split into")
    p.add_argument("--threads", type=int, default=0, help="hashing threads (0: min(4, cpus))")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fp-bench-") as tmp:
        if args.model:
            root = Path(args.model)
            if not root.is_dir():
                raise ValueError(f"--model {root}: not a directory")
        else:
            root = Path(tmp) / "model"
            root.mkdir()
            write_weights(root, args.gb, args.shards)
        os.environ[F.ENV_CACHE_DIR] = str(Path(tmp) / "cache")
        for cache in F.cache_paths(root):
            cache.unlink(missing_ok=True)
        total = sum(f.stat().st_size for f in F.hashed_files(root))
        weights = max(F.hashed_files(root), key=lambda f: f.stat().st_size)
        t = time.perf_counter()
        F.sha256_file(weights)
        one = time.perf_counter() - t
        first = F.fingerprint_model_dir(root, threads=args.threads)
        restart = F.fingerprint_model_dir(root, threads=args.threads)
        print("| measure | value |\n|---|---|")
        print(f"| sha256 of one {weights.stat().st_size / 1e9:.2f} GB file, one thread | "
              f"{weights.stat().st_size / 1e9 / one:.2f} GB/s ({one:.2f} s) |")
        print(f"| first start: {first.files} files, {total / 1e9:.2f} GB hashed | "
              f"{first.seconds:.2f} s ({total / 1e9 / max(first.seconds, 1e-9):.2f} GB/s) |")
        print(f"| restart with the cache ({restart.cached} of {restart.files} files cached, "
              f"{restart.hashed} hashed) | {restart.seconds * 1e3:.1f} ms |")
        print(f"| cpus | {os.cpu_count()} |")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
