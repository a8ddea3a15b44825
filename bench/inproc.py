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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from bench import one_line_errors  # noqa: E402
from bench.flops import FlopCounter  # noqa: E402
from evaluator.data import dataset  # noqa: E402
from evaluator.data.media import parse_media_roots  # noqa: E402
from evaluator.run import methods, presets  # noqa: E402
from model_server import backends  # noqa: E402
from model_server.backends.base import GenerateTask, ScoreTask  # noqa: E402
from model_server.backends.hf import HFBackend  # noqa: E402
from model_server.stage_times import StageTimes  # noqa: E402

IMAGE_LOADING = "image loading (read + decode)"


def load_tasks(annotations: str, roots: list[str], limit: int | None, method: str = "ppl"
               ) -> tuple[list[ScoreTask | GenerateTask], float]:
    """The L1+L2 questions as score tasks (`ppl`) or as the evaluator's Generate requests
    (`generate`), and the seconds spent reading and decoding images. The one place the
    benchmarks read questions through the evaluator's own code."""
    ds = dataset.load(annotations, parse_media_roots(roots),
                      dataset.Filters(level="L2", limit=limit))
    tasks, decode_s = [], 0.0
    for q in ds.questions:
        t0 = time.perf_counter()
        images = [Image.open(io.BytesIO(p.read_bytes())).convert("RGB") for p in q.images]
        decode_s += time.perf_counter() - t0
        if method == "generate":
            tasks.append(GenerateTask(q.question_id, methods.listed_prompt(q), images,
                                      max_new_tokens=methods.GENERATE_MAX_NEW_TOKENS,
                                      seed=methods.GENERATE_SEED))
        else:
            prompt = methods.score_prompt(q, "ppl", presets.get(presets.DEFAULT))
            tasks.append(ScoreTask(q.question_id, prompt.text, images, list(prompt.options)))
    return tasks, decode_s


def run(backend: HFBackend, tasks: list[ScoreTask], mode: str, max_batch: int,
        prepare_threads: int = 4) -> list:
    """Score `tasks` in batches. Where the backend prepares ahead (accelerators), worker
    threads render, tokenise and preprocess while the device scores, as the server does."""
    if mode == "reference":
        return [backend.score_per_option(t) for t in tasks]
    results = []
    with ThreadPoolExecutor(prepare_threads) as pool:
        ready = pool.map(backend.prepare, tasks) if backend.prepare_ahead else iter(tasks)
        batch = []
        for t in ready:
            batch.append(t)
            if len(batch) == max_batch:
                results.extend(backend.score(batch))
                batch = []
        if batch:
            results.extend(backend.score(batch))
    return results


def flops_per_question(backend: HFBackend, tasks: list[ScoreTask]) -> float | None:
    """Mean model FLOPs of a question (bench/flops.py), from each question's real token counts."""
    try:
        counter = FlopCounter(backend.model)
    except AttributeError:  # not a LLaVA-style layout
        return None
    total = 0.0
    for t in tasks:
        p = backend.inputs.shared(t)
        ids = p.prefix["input_ids"][0]
        scored = sum(e - b for b, e in p.spans)
        image_tokens = int((ids == backend.inputs.image_token_id).sum())
        total += counter.question(ids.shape[0], [len(c) for c in p.conts], scored, len(t.images),
                                  image_tokens)
    return total / len(tasks)


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
    ap.add_argument("--packing", default="auto", help="hf backend's packing setting (shared mode)")
    ap.add_argument("--prepare-ahead", default="auto", help="hf backend's prepare_ahead setting")
    ap.add_argument("--profile", type=int, default=16,
                    help="questions for the per-stage breakdown, run after the timed run")
    args = ap.parse_args()

    tasks, decode_s = load_tasks(args.annotations, args.media_root, args.limit)
    t_load = time.perf_counter()
    backend = backends.create("hf", args.model, device=args.device, threads=args.threads,
                              prefix_sharing=args.mode == "shared", packing=args.packing,
                              prepare_ahead=args.prepare_ahead)
    sync = _cuda_sync(backend.device)
    sync()
    load_s = time.perf_counter() - t_load
    for t in tasks[: args.warmup]:  # first calls pay one-off costs in both modes
        backend.score([t])
    sync()
    t0 = time.perf_counter()
    results = run(backend, tasks, args.mode, args.max_batch)
    sync()
    elapsed = time.perf_counter() - t0
    failed = [(t.request_id, r) for t, r in zip(tasks, results, strict=True)
              if isinstance(r, Exception)]
    if failed:  # a benchmark of answers that were not computed would mean nothing
        raise RuntimeError(f"{len(failed)} questions failed, e.g. {failed[0][0]}: {failed[0][1]!r}")

    sample = tasks[::max(1, len(tasks) // max(1, args.profile))][: args.profile]  # spans the mix
    overlap, backend.prepare_ahead = backend.prepare_ahead, False  # stages one after another
    backend.stage_times = StageTimes(sync)
    t1 = time.perf_counter()
    run(backend, sample, args.mode, args.max_batch)
    profiled_s = time.perf_counter() - t1
    stages = {k: v / len(sample) for k, v in backend.stage_times.seconds.items()}
    stages[IMAGE_LOADING] = decode_s / len(tasks)
    backend.stage_times, backend.prepare_ahead = None, overlap
    print(json.dumps({
        "mode": args.mode, "questions": len(tasks), "elapsed_s": elapsed,
        "qps": len(tasks) / elapsed, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": backend.device, "gpu_peak_mb": _gpu_peak(backend.device),
        "model_load_s": load_s, "scoring": backend.info().details["option_scoring"],
        "prepare": backend.info().details["prepare"],
        "image_preprocessing": backend.info().details["image_preprocessing"],
        "stages_s_per_question": stages, "profiled_s_per_question": profiled_s / len(sample),
        "flops_per_question": flops_per_question(backend, tasks),
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
    sys.exit(one_line_errors.run(main))
