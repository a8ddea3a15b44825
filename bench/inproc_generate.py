"""In-process Generate throughput on the sample data: one question at a time vs batched.

Both in ONE process, alternating chunk by chunk (a chunk is --max-batch questions,
run one at a time and then as one batch, the order flipped every chunk), so the
machine's load falls on both alike. Questions are the evaluator's `generate`
requests (greedy, 32 new tokens). Then a profiled pass per mode (device
synchronised around each stage: preparation, prefill, decode steps) gives the
stage breakdown, and the decode steps' memory traffic: weights + key/value cache
read per step over the step time. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import one_line_errors  # noqa: E402
from bench.flops import decode_bytes  # noqa: E402
from bench.inproc import IMAGE_LOADING, _cuda_sync, _gpu_peak, load_tasks  # noqa: E402
from model_server import backends  # noqa: E402
from model_server.backends.decode_loop import DECODE, DecodeCounts  # noqa: E402
from model_server.stage_times import StageTimes  # noqa: E402

MODES = ("one at a time", "batched")


def generate(backend, tasks, batched: bool, pool: ThreadPoolExecutor) -> list:
    """As the server does: prepared in worker threads where the backend prepares ahead
    (accelerators), then one generate_batch call per question, or one for all."""
    prepared = list(pool.map(backend.prepare_generate, tasks))
    if batched:
        return backend.generate_batch(prepared)
    return [r for p in prepared for r in backend.generate_batch([p])]


def measure(backend, tasks, max_batch: int, sync) -> dict:
    seconds = dict.fromkeys(MODES, 0.0)
    tokens = dict.fromkeys(MODES, 0)
    texts: dict[str, list] = {m: [] for m in MODES}
    with ThreadPoolExecutor(4) as pool:
        for k in range(0, len(tasks), max_batch):
            chunk = tasks[k:k + max_batch]
            order = MODES if (k // max_batch) % 2 == 0 else MODES[::-1]
            for mode in order:
                backend.decoder.counts = DecodeCounts()
                sync()
                t0 = time.perf_counter()
                out = generate(backend, chunk, mode == "batched", pool)
                sync()
                seconds[mode] += time.perf_counter() - t0
                tokens[mode] += backend.decoder.counts.new_tokens
                texts[mode].extend(out)
    failed = [r for m in MODES for r in texts[m] if isinstance(r, Exception)]
    if failed:  # a benchmark of answers that were not computed would mean nothing
        raise RuntimeError(f"{len(failed)} generations failed, e.g. {failed[0]!r}")
    return {m: {"seconds": seconds[m], "qps": len(tasks) / seconds[m], "new_tokens": tokens[m],
                "tokens_per_s": tokens[m] / seconds[m], "texts": texts[m]} for m in MODES}


def profile(backend, sample, max_batch: int, sync, traffic) -> dict:
    """Per mode: seconds per question by stage, and the decode steps' bytes read per second."""
    weight_bytes, kv_bytes_per_token = traffic
    out = {}
    overlap, backend.prepare_ahead = backend.prepare_ahead, False  # stages one after another
    with ThreadPoolExecutor(1) as pool:
        for mode in MODES:
            backend.stage_times = StageTimes(sync)
            backend.decoder.counts = counts = DecodeCounts()
            for k in range(0, len(sample), max_batch):
                generate(backend, sample[k:k + max_batch], mode == "batched", pool)
            stages = dict(backend.stage_times.seconds)
            read = counts.steps * weight_bytes + counts.cache_tokens_read * kv_bytes_per_token
            out[mode] = {
                "stages_s_per_question": {k: v / len(sample) for k, v in stages.items()},
                "decode_steps": counts.steps, "new_tokens": counts.new_tokens,
                "prefill_tokens": counts.prefill_tokens,
                "decode_bytes_per_s": read / stages[DECODE] if stages.get(DECODE) else None,
                "decode_bytes_per_step": read / counts.steps if counts.steps else None,
                "decode_step_s": stages.get(DECODE, 0.0) / max(1, counts.steps),
            }
    backend.stage_times, backend.prepare_ahead = None, overlap
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--annotations", required=True)
    ap.add_argument("--media-root", action="append", default=[])
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--limit", type=int, help="questions (default: all of the sample)")
    ap.add_argument("--device", default="")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--profile", type=int, default=16, help="questions in the stage breakdown")
    args = ap.parse_args()

    tasks, decode_s = load_tasks(args.annotations, args.media_root, args.limit, "generate")
    backend = backends.create("hf", args.model, device=args.device, threads=args.threads)
    if backend.decoder is None:
        raise SystemExit(f"generation is not batched for {backend.model_type}")
    sync = _cuda_sync(backend.device)
    backend.generate_batch(tasks[:2])  # one-off costs out of the timed run
    runs = measure(backend, tasks, args.max_batch, sync)
    sample = tasks[::max(1, len(tasks) // max(1, args.profile))][: args.profile]
    profiled = profile(backend, sample, args.max_batch, sync, decode_bytes(backend.model))
    for mode in MODES:
        runs[mode].update(profiled[mode])
        runs[mode]["stages_s_per_question"][IMAGE_LOADING] = decode_s / len(tasks)
    one, batched = (runs[m]["texts"] for m in MODES)
    print(json.dumps({
        "questions": len(tasks), "max_batch": args.max_batch, "device": backend.device,
        "model": Path(args.model).name,
        "qps": runs["batched"]["qps"],
        "same_texts": sum(a == b for a, b in zip(one, batched, strict=True)),
        "gpu_peak_mb": _gpu_peak(backend.device), "gpu": _gpu_name(backend.device),
        "weight_bytes_per_step": decode_bytes(backend.model)[0],
        "modes": {m: {k: v for k, v in r.items() if k != "texts"} for m, r in runs.items()},
    }))
    return 0


def _gpu_name(device: str) -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if device.startswith("cuda") else None


if __name__ == "__main__":
    sys.exit(one_line_errors.run(main))
