"""The Generate rows of `make bench`: one question at a time vs batched.

- in process (bench/inproc_generate.py) on the benchmark's model: questions/s, new
  tokens/s, the stage breakdown (preparation, prefill, decode steps) and, on a GPU,
  the decode steps' memory traffic against the device's peak bandwidth;
- over gRPC on the committed demo model: the evaluator's `--method generate` against
  a server with `--max-batch 1` and one with `--max-batch 8`, both up at once and
  measured in alternating rounds on the same questions, predictions and texts
  compared question by question.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.flops import peak_bandwidth  # noqa: E402

DEMO_MODEL = "models/demo-llava"
BATCHES = (1, 8)  # the servers' --max-batch, one at a time vs batched


def generated_texts(out: Path) -> dict[str, str]:
    """The generated text of every answered question of an evaluator run (`generate`)."""
    from evaluator import load_run

    return {q.question_id: (q.evidence or {}).get("text", "")
            for q in load_run(out).questions(evidence=True) if q.status == "ok"}


def grpc_ab(servers, evaluate, data: Path, work: Path, logs: Path, device: str,
            rounds: int, threads: int = 0) -> dict:
    """The demo model over gRPC, --max-batch 1 vs 8, alternating rounds; `servers` and
    `evaluate` are run_bench's (process start, one evaluation through the library).
    `threads`: the servers' torch threads (0: torch's default)."""
    thread_args = ["--backend-arg", f"threads={threads}"] if threads else []
    args = [["--backend", "hf", "--model", DEMO_MODEL, "--device", device,
             "--max-batch", str(n), *thread_args] for n in BATCHES]
    seconds = dict.fromkeys(BATCHES, 0.0)
    runs: dict[int, dict] = {}
    with servers(args, logs) as procs:
        for n, (target, _) in zip(BATCHES, procs, strict=True):  # one-off costs out
            evaluate([target], data, work / f"warm-g{n}", method="generate", limit=16)
        for r in range(rounds):
            order = list(zip(BATCHES, procs, strict=True))
            for n, (target, _) in order if r % 2 == 0 else order[::-1]:
                run = evaluate([target], data, work / f"run-g{n}", method="generate")
                seconds[n] += run["elapsed_s"]
                runs[n] = run
                run["texts"] = generated_texts(work / f"run-g{n}")
    # The tokenizer alone (not transformers: a large process here would inflate the peak
    # memory later evaluator processes report, forked from this one).
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(DEMO_MODEL) / "tokenizer.json"))
    out = {"rounds": rounds, "model": DEMO_MODEL, "threads": threads}
    for n in BATCHES:
        answered = runs[n]["answered"] * rounds
        tokens = rounds * sum(len(tokenizer.encode(t, add_special_tokens=False).ids)
                              for t in runs[n]["texts"].values())
        out[n] = {"questions": runs[n]["answered"], "errors": runs[n]["errors"],
                  "qps": answered / seconds[n], "tokens_per_s": tokens / seconds[n],
                  "error_samples": runs[n]["error_samples"]}
    one, many = (runs[n] for n in BATCHES)
    out["same_predictions"] = sum(one["predictions"].get(q) == many["predictions"].get(q)
                                  for q in many["texts"])  # None: no option named
    out["same_texts"] = sum(one["texts"].get(q) == t for q, t in many["texts"].items())
    out["compared"] = len(many["texts"])
    out["qps"] = out[BATCHES[1]]["qps"]  # the batched server's, for the progress line
    return out


def _threads(grpc: dict) -> str:
    n = grpc.get("threads", 1)
    return f"`--backend-arg threads={n}`" if n else "torch's default threads"


def report(inproc: dict | None, grpc: dict | None, command: str) -> list[str]:
    """Markdown: the rows, notes and the in-process stage breakdown."""
    lines = ["### Generate: one question at a time vs batched", "",
             "| measurement | questions | questions/s | new tokens/s | ratio |",
             "|---|---|---|---|---|"]
    if inproc:
        one, many = (inproc["modes"][m] for m in ("one at a time", "batched"))
        for name, r in (("one at a time", one), ("batched", many)):
            lines.append(f"| (g) in process, `{inproc.get('model', '')}`, {name} (`generate_batch` of "
                         f"{1 if r is one else inproc['max_batch']}) | {inproc['questions']} | "
                         f"{r['qps']:.2f} | {r['tokens_per_s']:.1f} | "
                         f"{r['qps'] / one['qps']:.2f}x |")
    if grpc:
        one, many = grpc[BATCHES[0]], grpc[BATCHES[1]]
        for n, r in ((BATCHES[0], one), (BATCHES[1], many)):
            lines.append(f"| (G) over gRPC, `{grpc['model']}`, evaluator `--method generate`, "
                         f"server `--max-batch {n}` | {r['questions']} x {grpc['rounds']} | "
                         f"{r['qps']:.2f} | {r['tokens_per_s']:.1f} | {r['qps'] / one['qps']:.2f}x |")
    lines.append("")
    if inproc:
        lines.append(f"- (g): identical texts on {inproc['same_texts']}/{inproc['questions']} "
                     "questions (one at a time vs batched, alternating chunks in one process).")
        lines += _bandwidth(inproc)
    if grpc:
        one, many = grpc[BATCHES[0]], grpc[BATCHES[1]]
        lines.append(
            f"- (G): {many['qps'] / one['qps']:.2f}x questions/s (goal 2.5x); identical texts on "
            f"{grpc['same_texts']}/{grpc['compared']} questions, identical predictions on "
            f"{grpc['same_predictions']}/{grpc['compared']}; errors {one['errors']} and "
            f"{many['errors']}; both servers with {_threads(grpc)}, up at once, "
            f"{grpc['rounds']} alternating rounds; new tokens counted by re-tokenising the "
            f"returned texts.")
    if command:
        lines.append(f"- Command: `{command}`.")
    if inproc:
        lines += ["", *_stages(inproc)]
    return lines + [""]


def _bandwidth(inproc: dict) -> list[str]:
    gpu = inproc.get("gpu")
    peak = peak_bandwidth(gpu) if gpu else None
    out = []
    for mode, r in inproc["modes"].items():
        if not r.get("decode_bytes_per_s"):
            continue
        rate = r["decode_bytes_per_s"]
        out.append(f"- (g) {mode}: decode step {1e3 * r['decode_step_s']:.2f} ms, reading "
                   f"{r['decode_bytes_per_step'] / 1e6:.1f} MB (weights + key/value cache): "
                   f"{rate / 1e9:.1f} GB/s" + (f", {rate / peak:.1%} of {gpu}'s "
                                              f"{peak / 1e12:.2f} TB/s" if peak else "") + ".")
    return out


def _stages(inproc: dict) -> list[str]:
    modes = inproc["modes"]
    names = list(dict.fromkeys(k for r in modes.values() for k in r["stages_s_per_question"]))
    lines = ["| (g) stage (ms per question, profiled) | " + " | ".join(modes) + " |",
             "|---|" + "---|" * len(modes)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(
            f"{1e3 * r['stages_s_per_question'].get(n, 0.0):.2f}" for r in modes.values()) + " |")
    lines.append("| decode steps run / new tokens | " + " | ".join(
        f"{r['decode_steps']} / {r['new_tokens']}" for r in modes.values()) + " |")
    lines.append("| wall time per question, timed run | " + " | ".join(
        f"{1e3 / r['qps']:.2f}" for r in modes.values()) + " |")
    return lines


def main() -> int:
    """Render the (g) rows from bench/inproc_generate.py's JSON (bench/gpu_check.sh)."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--inproc", required=True, help="inproc_generate.py's JSON line")
    ap.add_argument("--command", default="", help="the command that measured it")
    args = ap.parse_args()
    text = Path(args.inproc).read_text().strip().splitlines()[-1]
    print("\n".join(report(json.loads(text), None, args.command)))
    return 0


if __name__ == "__main__":
    from bench import one_line_errors

    sys.exit(one_line_errors.run(main))
