"""In-process scoring throughput of one method on the sample data; prints one JSON line.

Run as a separate process per method so each gets its own peak-memory reading.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from evaluator import dataset, methods, presets  # noqa: E402
from evaluator.media import parse_media_roots  # noqa: E402
from model_server import backends  # noqa: E402
from model_server.backends.base import ScoreTask  # noqa: E402


def load_tasks(annotations: str, roots: list[str], limit: int | None) -> list[ScoreTask]:
    ds = dataset.load(annotations, parse_media_roots(roots),
                      dataset.Filters(level="L2", limit=limit))
    tasks = []
    for q in ds.questions:
        prompt = methods.score_prompt(q, "ppl", presets.get(presets.DEFAULT))
        images = [Image.open(io.BytesIO(Path(p).read_bytes())).convert("RGB") for p in q.image_paths]
        tasks.append(ScoreTask(q.question_id, prompt.text, images, list(prompt.options)))
    return tasks


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--annotations", required=True)
    ap.add_argument("--media-root", action="append", default=[])
    ap.add_argument("--mode", choices=["reference", "shared"], required=True)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--device", default="")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()

    tasks = load_tasks(args.annotations, args.media_root, args.limit)
    backend = backends.create("hf", args.model, device=args.device, threads=args.threads,
                              prefix_sharing=args.mode == "shared")
    for t in tasks[: args.warmup]:  # first calls pay one-off costs in both modes
        backend.score([t])
    sync = _cuda_sync(backend.device)
    t0 = time.perf_counter()
    results = []
    if args.mode == "reference":
        for t in tasks:
            results.append(backend.score_per_option(t))
    else:
        for k in range(0, len(tasks), args.max_batch):
            results.extend(backend.score(tasks[k:k + args.max_batch]))
    sync()
    elapsed = time.perf_counter() - t0
    print(json.dumps({
        "mode": args.mode, "questions": len(tasks), "elapsed_s": elapsed,
        "qps": len(tasks) / elapsed, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": backend.device, "gpu_peak_mb": _gpu_peak(backend.device),
        "scores": {t.request_id: [[s.logprob_sum, s.num_tokens] for s in r]
                   for t, r in zip(tasks, results, strict=True)},
    }))
    return 0


def _cuda_sync(device: str):
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def _gpu_peak(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


if __name__ == "__main__":
    sys.exit(main())
