"""`make demo-check`: the trained demo model's answers do not depend on how they are asked for.

On a fresh seed of the sample data (dims 1-24), served over gRPC and evaluated
through the evaluator's library API, each variant is compared with the baseline (ppl, prefix
sharing on, batches of up to 16, annotation order):

- prefix sharing off (one full forward per option, the reference arithmetic);
- batch size 1 instead of 16;
- every question's options sent in a shuffled order (matched back by option text);
- the questions sent in a shuffled order;
- the other methods (`letter`, `generate`), whose arithmetic differs: only
  prediction agreement is meaningful there.

For each: how many predictions agree, and the largest difference of any option's
summed log-probability. Prints a Markdown table (and writes it with --out).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import one_line_errors  # noqa: E402
from evaluator import RunConfig  # noqa: E402
from evaluator import evaluate as evaluate_config  # noqa: E402
from evaluator.data import sample_data  # noqa: E402
from evaluator.demo import ServerSpec, serve  # noqa: E402
from evaluator.run.methods import METHODS  # noqa: E402
from serving import environment  # noqa: E402

LETTERS = "ABCD"
LEARNABLE = "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24"


@dataclass
class VariantRun:
    chosen: dict[str, str | None]           # question_id -> the predicted option's text
    correct: int
    logprobs: dict[str, dict[str, float]]   # question_id -> option text -> logprob_sum
    wall_s: float


def shuffled_options(doc: dict, seed: int) -> dict:
    """Each question's four choices permuted, the answer letter moved with its choice."""
    rng = random.Random(seed)
    out = json.loads(json.dumps(doc))
    for q in out["questions"]:
        if "choice_a" not in q or q["question_type_id"] >= 25:
            continue
        keys = [f"choice_{c}" for c in "abcd"]
        opts = [q[k] for k in keys]
        right = opts[LETTERS.index(q["answer"])]
        rng.shuffle(opts)
        for k, o in zip(keys, opts, strict=True):
            q[k] = o
        q["answer"] = LETTERS[opts.index(right)]
    return out


def shuffled_questions(doc: dict, seed: int) -> dict:
    out = json.loads(json.dumps(doc))
    random.Random(seed).shuffle(out["questions"])
    return out


def read_run(result, doc: dict, method: str) -> VariantRun:
    """Predictions and per-option log-probabilities of a finished run (evaluator.RunResult)."""
    choices = {q["question_id"]: [q[f"choice_{c}"] for c in "abcd"] for q in doc["questions"]}
    chosen, logprobs, correct = {}, {}, 0
    for q in result.questions(evidence=method == "ppl"):
        if q.status != "ok":
            continue
        pred = q.prediction
        chosen[q.question_id] = (choices[q.question_id][LETTERS.index(pred)]
                                 if pred and pred in LETTERS else None)
        correct += q.correct
        if method == "ppl":  # options are the choices, in the annotation's order
            logprobs[q.question_id] = {o: s["logprob_sum"] for o, s in zip(
                choices[q.question_id], q.evidence, strict=True)}
    return VariantRun(chosen, correct, logprobs, result.run.elapsed_s)


def evaluate(target: str, doc: dict, data: Path, out: Path, method: str) -> VariantRun:
    shutil.rmtree(out, ignore_errors=True)  # a fresh run each time: a resumed one measures nothing
    ann = out.with_suffix(".json")
    ann.write_text(json.dumps(doc))
    result = evaluate_config(RunConfig(annotations=ann, media_roots=sample_data.media_roots(data),
                                       model=target, out=out, method=method,
                                       dimensions=LEARNABLE))
    return read_run(result, doc, method)


def compare(base: VariantRun, other: VariantRun) -> dict:
    """Prediction agreement by option text, and the largest option log-prob difference."""
    same = sum(1 for q, text in base.chosen.items() if other.chosen.get(q) == text)
    diffs = [abs(lp - other.logprobs[q][o]) for q, opts in base.logprobs.items()
             if q in other.logprobs for o, lp in opts.items()]
    return {"agree": same, "n": len(base.chosen), "answered": len(other.chosen),
            "max_abs_logprob_diff": max(diffs) if diffs else None,
            "accuracy": 100.0 * other.correct / max(1, len(other.chosen)), "wall_s": other.wall_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "models" / "demo-llava"))
    p.add_argument("--seed", type=int, default=2024, help="sample-data seed (not the training one)")
    p.add_argument("--per-dim", type=int, default=10)
    p.add_argument("--work", default="demo-out/check")
    p.add_argument("--out", help="also write the Markdown report here")
    args = p.parse_args(argv)
    environment.apply()  # the servers' idle OpenMP threads sleep rather than spin, and the rest
    work = Path(args.work)
    data = work / "data"
    t0 = time.monotonic()
    doc = json.loads(sample_data.write_v2(data, seed=args.seed, per_dim=args.per_dim).read_text())
    hf = ["--backend", "hf", "--model", args.model]
    rows: list[tuple[str, dict]] = []

    def server(name: str, *extra: str):
        return serve(ServerSpec(name, "model_server.cli", [*hf, *extra]), work / f"{name}.log")

    with server("shared-b16", "--max-batch", "16") as target:
        base = evaluate(target, doc, data, work / "ppl", "ppl")
        rows.append(("baseline: ppl, prefix sharing on, batch 16", compare(base, base)))
        rows.append(("options in shuffled order",
                     compare(base, evaluate(target, shuffled_options(doc, args.seed), data,
                                            work / "ppl-shuffled-options", "ppl"))))
        rows.append(("questions in shuffled order",
                     compare(base, evaluate(target, shuffled_questions(doc, args.seed), data,
                                            work / "ppl-shuffled-questions", "ppl"))))
        for method in [m for m in METHODS if m != "ppl"]:
            rows.append((f"method `{method}` (different arithmetic)",
                         compare(base, evaluate(target, doc, data, work / method, method))))
    with server("per-option-b16", "--max-batch", "16",
                "--backend-arg", "prefix_sharing=false") as target:
        rows.append(("prefix sharing off (per-option forwards)",
                     compare(base, evaluate(target, doc, data, work / "ppl-no-sharing", "ppl"))))
    with server("shared-b1", "--max-batch", "1") as target:
        rows.append(("batch size 1",
                     compare(base, evaluate(target, doc, data, work / "ppl-b1", "ppl"))))
    report = render(rows, args, len(doc["questions"]), time.monotonic() - t0)
    print(report)
    if args.out:
        Path(args.out).write_text(report)
    return 0


def render(rows, args, n_questions: int, wall_s: float) -> str:
    n = rows[0][1]["n"]
    lines = [f"Model `{Path(args.model).name}`; `seedbench sample-data --seed {args.seed} "
             f"--per-dim {args.per_dim}`, dims 1-24 ({n} of {n_questions} questions); "
             f"each variant vs the baseline. Total {wall_s:.0f}s.", "",
             "| variant | predictions agreeing | max abs. option log-prob diff | accuracy % | "
             "run s |", "|---|---|---|---|---|"]
    for name, r in rows:
        diff = "n/a" if r["max_abs_logprob_diff"] is None else f"{r['max_abs_logprob_diff']:.2e}"
        lines.append(f"| {name} | {r['agree']}/{r['n']} | {diff} | {r['accuracy']:.1f} | "
                     f"{r['wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(one_line_errors.run(main))
