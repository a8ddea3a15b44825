"""Load time and peak memory of the evaluator on a full-size synthetic SEED-Bench-2 parquet snapshot.

Writes a snapshot shaped as the hub's (24,371 rows in SEED-Bench-2's per-dimension
counts, `--shards` files of 100-row row groups, `image` a list of {bytes, path}
structs with each dimension's image count: 8 frames for video, 4 option images
for L3, ...; small unique noise PNGs of about `--image-kb` KB each), then measures,
each in a fresh process (peak resident memory = `VmHWM`, which, unlike `ru_maxrss`,
does not carry over the parent's peak across fork + exec):

- idle: the interpreter with the evaluator and pyarrow imported;
- load: `dataset.load` of the snapshot folder (question columns only);
- send: load, then every question's images read through `read_image` in file
  order by 4 threads, as the run's media pool reads them;
- read_table: `pyarrow.parquet.read_table` of the whole snapshot (what holding it
  in memory costs, for comparison);
and, in this process, the provenance hashing: every shard's footer (what the
evaluator records) against hashing the shards whole.

    python bench/snapshot_memory.py [--out DIR] [--shards 418] [--image-kb 6] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.one_line_errors import run as one_line  # noqa: E402
from evaluator.data import sample_data  # noqa: E402
from evaluator.data.benchmarks import SEED_BENCH_2  # noqa: E402

IMAGES_PER_DIM = {**dict.fromkeys(range(1, 17), 1), 17: 2, 18: 2, **dict.fromkeys(range(19, 23), 8),
                  23: 3, 24: 3, 25: 4, 26: 7, 27: 4}
ROW_GROUP = 100  # the hub's row group size for image datasets


def noise_png(rng: random.Random, side: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(buf, format="PNG")
    return buf.getvalue()


def write_snapshot(out: Path, shards: int, image_kb: float, seed: int = 0) -> dict:
    """The snapshot under out/data; returns its row, image and byte counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    side = max(8, int((image_kb * 1024 / 3) ** 0.5))
    rows = [(dim, k) for dim, n in enumerate(sample_data.FULL_COUNTS, start=1) for k in range(n)]
    per = -(-len(rows) // shards)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    (out / "data").mkdir(parents=True, exist_ok=True)
    images = total = 0
    for s in range(shards):
        part = rows[s * per:(s + 1) * per]
        data_ids, imgs = [], []
        for dim, k in part:
            ids = [f"task{dim}/{k}_{i}.png" for i in range(IMAGES_PER_DIM[dim])]
            data_ids.append(ids)
            imgs.append([{"bytes": noise_png(rng, side), "path": i} for i in ids])
            images += len(ids)
            total += sum(len(x["bytes"]) for x in imgs[-1])
        dims = [d for d, _ in part]
        table = pa.table({
            "answer": ["ABCD"[k % 4] for _, k in part],
            **{f"choice_{c}": [f"option {c}"] * len(part) for c in "abcd"},
            "data_id": pa.array(data_ids, pa.list_(pa.string())),
            "data_type": ["Single Image"] * len(part),
            "data_source": ["cc3m" if d <= 9 else "SEED-Bench v2" for d in dims],
            "level": [SEED_BENCH_2.level_of(d) for d in dims],
            "question": ["What is shown?"] * len(part),
            "question_id": [f"{d}_{k}" for d, k in part],
            "question_type_id": pa.array(dims, pa.int16()),
            "image": pa.array(imgs, pa.list_(image)),
            "subpart": [SEED_BENCH_2.subpart_of(d) for d in dims],
            "version": ["v2"] * len(part),
        })
        pq.write_table(table, out / "data" / f"test-{s:05d}-of-{shards:05d}.parquet",
                       row_group_size=ROW_GROUP)
    return {"rows": len(rows), "images": images, "image_bytes": total,
            "file_bytes": sum(p.stat().st_size for p in (out / "data").iterdir())}


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(mode: str, folder: Path) -> dict:
    """One measurement in this (fresh) process."""
    import pyarrow.parquet as pq

    from evaluator.data import dataset, embedded_images
    from evaluator.data.image_source import read_image

    t0 = time.perf_counter()
    if mode == "idle":
        return {"peak_mb": peak_mb()}
    if mode == "read_table":
        table = pq.read_table(folder)
        return {"seconds": round(time.perf_counter() - t0, 2), "peak_mb": peak_mb(),
                "arrow_mb": round(table.nbytes / 2**20, 1)}
    ds = dataset.load(folder, {})
    out = {"questions": len(ds.questions), "invalid": len(ds.invalid),
           "load_seconds": round(time.perf_counter() - t0, 2), "load_peak_mb": peak_mb()}
    if mode == "send":
        t1 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            sent = sum(pool.map(lambda q: sum(len(read_image(s).data) for s in q.images),
                                ds.questions))
        out.update(send_seconds=round(time.perf_counter() - t1, 2), sent_mb=round(sent / 2**20, 1),
                   row_groups_read=embedded_images.CACHE.groups_read, peak_mb=peak_mb())
    return out


def measure(mode: str, folder: Path) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", mode, str(folder)], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def hashing(folder: Path) -> dict:
    from evaluator.data import parquet_snapshot

    files = parquet_snapshot.shards(folder)
    t0 = time.perf_counter()
    parquet_snapshot.provenance(folder, files)
    footers = time.perf_counter() - t0
    t0 = time.perf_counter()
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    whole = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in files)
    return {"footer_seconds": round(footers, 3), "whole_seconds": round(whole, 2),
            "whole_mb_per_s": round(size / 2**20 / whole, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="where to write the snapshot (default: a temporary folder)")
    p.add_argument("--shards", type=int, default=418, help="shard files (the hub has 418)")
    p.add_argument("--image-kb", type=float, default=6.0, help="about how large each image is")
    p.add_argument("--keep", action="store_true", help="keep the snapshot")
    p.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return 0
    if args.shards < 1 or args.image_kb <= 0:
        raise ValueError("--shards and --image-kb must be positive")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="seedbench-snapshot-"))
    try:
        t0 = time.perf_counter()
        made = write_snapshot(out, args.shards, args.image_kb)
        made["write_seconds"] = round(time.perf_counter() - t0, 1)
        result = {"snapshot": made, "shards": args.shards}
        for mode in ("idle", "load", "send", "read_table"):
            result[mode] = measure(mode, out / "data")
        result["hashing"] = hashing(out / "data")
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(one_line(main))
