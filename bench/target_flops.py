"""What a throughput target asks of the device, computed without a device.

The model is built on torch's `meta` device (shapes only, no memory, no weights)
to count its parameters, and each question of a `seedbench sample-data --mix N`
sample goes through the hf backend's own input builder (template, tokens,
images; no model) for its real token counts. Prints the model FLOPs per question
by kind of question (bench/flops.py) and the MFU a target rate would need.

    python bench/target_flops.py --preset 7b --mix 200 --rate 30
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoConfig  # noqa: E402

from bench import one_line_errors  # noqa: E402
from bench.flops import PEAK_BF16, FlopCounter  # noqa: E402
from bench.inproc import load_tasks  # noqa: E402
from model_server.backends.hf_inputs import InputBuilder  # noqa: E402
from model_server.tiny import build_random, make_tiny  # noqa: E402


def kind(images: int) -> str:
    return {0: "no image", 1: "1 image", 2: "2 images", 8: "8 frames"}.get(images, f"{images} images")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="7b", help="tiny-model preset (LLaVA layout)")
    ap.add_argument("--mix", type=int, default=200, help="questions in SEED-Bench-2's L1+L2 mix")
    ap.add_argument("--rate", type=float, default=30.0, help="target questions/s")
    ap.add_argument("--peak", default="H200", choices=sorted(PEAK_BF16), help="device for the MFU")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny("llava", Path(tmp) / "model", preset=args.preset, random_init=True)
        data = Path(tmp) / "data"
        subprocess.run([sys.executable, "-m", "evaluator.cli", "sample-data", "--out", str(data),
                        "--mix", str(args.mix)], check=True, capture_output=True)
        tasks, _ = load_tasks(str(data / "SEED-Bench_v2_level1_2_3.json"),
                              [f"cc3m={data / 'cc3m'}", f"SEED-Bench v2={data / 'seed_bench_v2'}"],
                              None)
        config = AutoConfig.from_pretrained(model_dir)
        model = build_random(getattr(transformers, config.architectures[0]), config,
                             torch.bfloat16, "meta", 0)
        counter = FlopCounter(model)
        inputs = InputBuilder(model_dir, "cpu", torch.float32, images_on_device=False)
        by_kind: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for t in tasks:
            p = inputs.shared(t)
            ids = p.prefix["input_ids"][0]
            image_tokens = int((ids == inputs.image_token_id).sum())
            flops = counter.question(ids.shape[0], [len(c) for c in p.conts],
                                     sum(e - b for b, e in p.spans), len(t.images), image_tokens)
            by_kind[kind(len(t.images))].append((flops, ids.shape[0] + sum(map(len, p.conts))))

    params = sum(p.numel() for p in model.parameters())
    every = [f for rows in by_kind.values() for f, _ in rows]
    mean = statistics.fmean(every)
    peak = PEAK_BF16[args.peak]
    print(f"Model: LLaVA layout, preset `{args.preset}`, {params / 1e9:.2f}B parameters "
          f"(counted on the meta device); sample: `seedbench sample-data --mix {args.mix}` "
          f"({len(every)} questions, byte-level tokenizer).\n")
    print("| questions | share | tokens per question (prefix + options) | GFLOP per question |")
    print("|---|---|---|---|")
    for name, rows in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        print(f"| {name} | {len(rows) / len(every):.1%} | "
              f"{statistics.fmean(n for _, n in rows):.0f} | "
              f"{statistics.fmean(f for f, _ in rows) / 1e9:.0f} |")
    print(f"| all | 100% | - | {mean / 1e9:.0f} |\n")
    need = mean * args.rate
    print(f"{args.rate:g} questions/s needs {need / 1e12:.0f} TFLOP/s of model compute: "
          f"{need / peak:.0%} MFU on an {args.peak} (dense bf16 peak {peak / 1e12:.0f} TFLOP/s); "
          f"at 40% MFU the rate would be {0.4 * peak / mean:.1f} questions/s, at 60% "
          f"{0.6 * peak / mean:.1f}.")
    return 0


if __name__ == "__main__":
    sys.exit(one_line_errors.run(main))
