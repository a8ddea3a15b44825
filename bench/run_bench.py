"""Throughput benchmark: reference scoring vs this system, measured side by side in ONE run.

(a) reference: one full forward pass per option, one question at a time, in process
(b) this backend in process: prefix-shared, batched option scoring
(c) the full system over gRPC: evaluator process + model server process
(d) the evaluator against a no-op (synthetic) backend: client overhead, at full scale
plus the peak memory of every process, 1 vs 2 server replicas, and Generate one question
at a time vs batched, in process (g) and over gRPC on the demo model (G)
(bench/generate_bench.py).
Writes a markdown report (docs/performance.md by default).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import generate_bench, one_line_errors  # noqa: E402
from bench.flops import peak_flops  # noqa: E402
from serving import processes  # noqa: E402

PY = sys.executable
ANN = "SEED-Bench_v2_level1_2_3.json"


class OutOfTime(Exception):
    """SIGTERM (e.g. from `timeout`): stop measuring, still write what was measured."""


def _stop(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the report is written next
    raise OutOfTime("stopped by its time limit (SIGTERM)")


def sh(*cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, env=processes.child_env(), cwd=ROOT, **kw)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def servers(args_list: list[list[str]], log_dir: Path):
    """Start model servers; yield [(target, process)] once all are SERVING; always stop them."""
    procs = []
    try:
        for extra in args_list:
            port = processes.free_port()
            procs.append(processes.start_server("model_server.cli", extra, name=f"server-{port}",
                                                port=port, log=log_dir / f"server-{port}.log"))
        processes.wait_serving(procs, timeout_s=300)
        yield [(p.target, p) for p in procs]
    finally:
        processes.stop(procs, grace_s=60)


def evaluate(targets: list[str], data: Path, out: Path, level: str = "L2", **settings) -> dict:
    """One evaluation through the library in its own process (bench/evaluate_once.py);
    returns run.json's record + the evaluator's peak RSS."""
    from evaluator.data.sample_data import media_roots

    shutil.rmtree(out, ignore_errors=True)  # a fresh store: nothing may be resumed
    config = {"annotations": str(data / ANN), "model": targets, "out": str(out), "level": level,
              "media_roots": {k: str(v) for k, v in media_roots(data).items()}, **settings}
    p = subprocess.Popen([PY, "bench/evaluate_once.py", json.dumps(config)],
                         env=processes.child_env(), cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    reply = p.stdout.read()
    p.stdout.close()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"evaluator failed (exit {p.returncode}): {json.dumps(config)}")
    child = json.loads(reply)
    run = child["run"]
    run["qps"] = run["answered"] / run["elapsed_s"]
    run["maxrss_mb"] = usage.ru_maxrss / 1024
    run["predictions"] = {json.loads(line)["question_id"]: json.loads(line)["prediction"]
                          for line in (out / "submission.jsonl").read_text().splitlines()}
    run["error_samples"] = child["errors"]
    return run


def warm_up(targets: list[str], data: Path, out: Path) -> None:
    """A few questions through every replica first, so one-off costs (CUDA
    context, kernel selection) stay out of the timed run, as in process."""
    evaluate(targets, data, out, limit=4 * len(targets))


def inproc(mode: str, model: Path, data: Path, device: str, threads: int, max_batch: int,
           packing: str = "auto", profile: int = 16) -> dict:
    out = sh(PY, "bench/inproc.py", "--model", model, "--annotations", data / ANN,
             "--media-root", f"cc3m={data / 'cc3m'}",
             "--media-root", f"SEED-Bench v2={data / 'seed_bench_v2'}",
             "--mode", mode, "--device", device, "--threads", threads, "--max-batch", max_batch,
             "--packing", packing, "--profile", profile, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def inproc_generate(model: Path, data: Path, device: str, threads: int, max_batch: int,
                    limit: int, profile: int) -> dict:
    out = sh(PY, "bench/inproc_generate.py", "--model", model, "--annotations", data / ANN,
             "--media-root", f"cc3m={data / 'cc3m'}",
             "--media-root", f"SEED-Bench v2={data / 'seed_bench_v2'}", "--device", device,
             "--threads", threads, "--max-batch", max_batch, "--limit", limit,
             "--profile", profile, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def predictions(scores: dict) -> dict:
    """ppl: the option with the highest mean log-prob per token."""
    return {qid: "ABCD"[max(range(len(s)), key=lambda k: (s[k][0] / s[k][1], -k))]
            for qid, s in scores.items()}


def gpu_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(0)


def breakdown(runs: dict[str, dict], grpc_s: float | None) -> list[str]:
    """Per-question milliseconds by stage, one column per in-process run."""
    names = list(dict.fromkeys(k for r in runs.values() for k in r["stages_s_per_question"]))
    lines = ["| stage (ms per question) | " + " | ".join(runs) + " |",
             "|---|" + "---|" * len(runs)]
    for n in names:
        cells = [f"{1e3 * r['stages_s_per_question'][n]:.2f}" if n in r["stages_s_per_question"]
                 else "-" for r in runs.values()]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("| sum of stages, profiled (device synchronised per stage) | " + " | ".join(
        f"{1e3 * sum(r['stages_s_per_question'].values()):.2f}" for r in runs.values()) + " |")
    lines.append("| wall time per question, profiled pass | " + " | ".join(
        f"{1e3 * r['profiled_s_per_question']:.2f}" for r in runs.values()) + " |")
    lines.append("| wall time per question, timed run | " + " | ".join(
        f"{1e3 / r['qps']:.2f}" for r in runs.values()) + " |")
    if grpc_s is not None:
        lines.append("| gRPC + evaluator + server queueing: 1/(c) - 1/(b) | " + " | ".join(
            f"{1e3 * grpc_s:.2f}" if k.startswith("(b)") else "-" for k in runs) + " |")
    return lines


def machine(device: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    import torch

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "none used"
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, GPU: {gpu}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="docs/performance.md", help="markdown report to write")
    ap.add_argument("--work", default="bench-out", help="scratch directory")
    ap.add_argument("--preset", default="small", help="tiny-model preset (small: CPU, mid: GPU)")
    ap.add_argument("--per-dim", type=int, default=8, help="sample questions per dimension")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--skip-full", action="store_true", help="skip the 24K-question client run")
    ap.add_argument("--skip-replicas", action="store_true",
                    help="skip 1 vs 2 replicas (on one GPU they share the device)")
    ap.add_argument("--mix", type=int, metavar="N",
                    help="N questions in SEED-Bench-2's L1+L2 proportions instead of --per-dim")
    ap.add_argument("--profile", type=int, default=16, help="questions in the stage breakdown")
    ap.add_argument("--json", help="also write every number measured to this JSON file")
    ap.add_argument("--skip-generate", action="store_true", help="skip the Generate rows")
    ap.add_argument("--generate-limit", type=int, default=64,
                    help="questions in the in-process Generate rows (g)")
    ap.add_argument("--generate-rounds", type=int, default=2,
                    help="alternating rounds of the demo model's gRPC Generate rows (G)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _stop)

    work = (ROOT / args.work).resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    data, full = work / "data", work / "full"
    model = work / f"llava-{args.preset}"
    t_start = time.time()
    sample = ["--mix", args.mix] if args.mix else ["--per-dim", args.per_dim]
    shutil.rmtree(data, ignore_errors=True)
    sh(PY, "-m", "evaluator.cli", "sample-data", "--out", data, *sample, capture_output=True)
    if not model.exists():
        sh(PY, "-m", "model_server.cli", "tiny", "--arch", "llava", "--preset", args.preset,
           "--out", model, capture_output=True)
    rows, notes = [], []
    results: dict = {"args": vars(args)}

    def dump():
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))

    stopped = []

    def measure(label, fn):
        """One measurement; a failure is reported and the later ones still run."""
        if stopped:
            notes.append(f"{label}: not measured (the run was stopped by its time limit).")
            return None
        print(f"{label} ...", flush=True)
        t0 = time.time()
        try:
            r = fn()
        except Exception as exc:  # noqa: BLE001 - a benchmark reports every failure, then goes on
            if isinstance(exc, OutOfTime):
                stopped.append(label)
            print(f"{label} FAILED: {exc}", flush=True)
            notes.append(f"{label}: not measured, it failed: {str(exc)[:300]}")
            results[label] = {"error": str(exc)}
            dump()
            return None
        r = dict(r, wall_s=time.time() - t0)
        results[label] = {k: v for k, v in r.items() if k not in ("scores", "predictions")}
        print(f"{label}: {r.get('qps', 0):.2f} questions/s ({r['wall_s']:.0f} s)", flush=True)
        dump()
        return r

    def run_inproc(mode, packing="auto"):
        return inproc(mode, model, data, args.device, args.threads, args.max_batch, packing,
                      args.profile)

    # Most wanted first: a run cut short by its time limit still has (b) and (c).
    b = measure("(b)", lambda: run_inproc("shared"))
    srv = ["--backend", "hf", "--model", str(model), "--device", args.device,
           "--max-batch", str(args.max_batch)]
    if args.threads:
        srv += ["--backend-arg", f"threads={args.threads}"]

    def full_system():
        with servers([srv], logs) as procs:
            warm_up([procs[0][0]], data, work / "warm-c")
            r = evaluate([procs[0][0]], data, work / "run-c")
            r["server_rss_mb"] = peak_rss_mb(procs[0][1].pid)
        return r

    c = measure("(c)", full_system)
    a = measure("(a)", lambda: run_inproc("reference"))
    other = "false" if b and "packed" in b["scoring"] else "true"
    b2 = measure("(b')", lambda: run_inproc("shared", other))
    pa = predictions(a["scores"]) if a else {}
    pb = predictions(b["scores"]) if b else {}
    if a and b:
        diff = max(abs(x[0] - y[0]) for q in a["scores"]
                   for x, y in zip(a["scores"][q], b["scores"][q], strict=True))
        same = sum(pa[q] == pb[q] for q in pa)
        notes.append(f"(b) vs (a): max |difference| in option log-probabilities {diff:.2e}; "
                     f"identical predictions on {same}/{len(pa)} questions.")
        results["b_vs_a"] = {"max_diff": diff, "same": same, "questions": len(pa)}
    if b and b2:
        diff = max(abs(x[0] - y[0]) for q in b["scores"]
                   for x, y in zip(b["scores"][q], b2["scores"][q], strict=True))
        same = sum(pb[q] == v for q, v in predictions(b2["scores"]).items())
        notes.append(f"(b') vs (b): max |difference| {diff:.2e}; identical predictions on "
                     f"{same}/{len(pb)} questions.")

    if c and pb:
        same_c = sum(c["predictions"].get(q) == pb[q] for q in pb)
        notes.append(f"(c) vs (b): identical predictions on {same_c}/{len(pb)} questions.")

    g_grpc = g_inproc = None
    if not args.skip_generate:
        g_grpc = measure("(G)", lambda: generate_bench.grpc_ab(
            servers, evaluate, data, work, logs, args.device, args.generate_rounds, args.threads))
        g_inproc = measure("(g)", lambda: inproc_generate(
            model, data, args.device, args.threads, args.max_batch, args.generate_limit,
            args.profile))

    r1 = r2 = None
    if not args.skip_replicas:
        one_thread = ["--backend", "hf", "--model", str(model), "--device", args.device,
                      "--max-batch", str(args.max_batch), "--backend-arg", "threads=1"]

        def replicas(n):
            with servers([one_thread] * n, logs) as procs:
                warm_up([t for t, _ in procs], data, work / f"warm-r{n}")
                r = evaluate([t for t, _ in procs], data, work / f"run-r{n}")
                r["server_rss_mb"] = max(peak_rss_mb(p.pid) for _, p in procs)
            return r

        r1 = measure("1 replica", lambda: replicas(1))
        r2 = measure("2 replicas", lambda: replicas(2))

    d = None
    if not args.skip_full:
        def noop_full():
            sh(PY, "-m", "evaluator.cli", "sample-data", "--out", full, "--full",
               capture_output=True)
            with servers([["--backend", "synthetic", "--model", "noop", "--max-batch", "64"]],
                         logs) as procs:
                r = evaluate([procs[0][0]], full, work / "run-d", level="L3")
                r["server_rss_mb"] = peak_rss_mb(procs[0][1].pid)
            return r

        d = measure("(d)", noop_full)

    gpu = gpu_name(args.device)
    peak = peak_flops(gpu) if gpu else None
    flops_q = next((r["flops_per_question"] for r in (b, a, b2) if r and r.get("flops_per_question")),
                   None)
    results["flops_per_question"] = flops_q
    results["peak_flops"] = peak

    def compute(qps):
        if not flops_q:
            return "-"
        tf = flops_q * qps / 1e12
        return f"{tf:.1f} TFLOP/s, MFU {tf * 1e12 / peak:.1%}" if peak else f"{tf:.4f} TFLOP/s"

    def row(name, r, qps, rss, extra="", useful=True):
        rows.append(f"| {name} | {r} | {qps:.2f} | {rss:.0f} | {extra} | "
                    f"{compute(qps) if useful else '-'} |")

    for label, r in (("(c)", c), ("1 replica", r1), ("2 replicas", r2), ("(d)", d)):
        if r and r["errors"]:
            notes.append(f"{label}: {r['errors']} questions errored, e.g. {r['error_samples'][:1]}")

    def ratio(x, y, what):
        return f"{x['qps'] / y['qps']:.2f}x {what}" if x and y else "-"

    n = next((r["questions"] for r in (a, b, b2) if r), 0)
    if a:
        row("(a) reference: full forward per option, 1 question at a time, in process", n,
            a["qps"], a["maxrss_mb"], "1.00x")
    if b:
        row(f"(b) this backend in process, default settings ({b['scoring']}; preparation: "
            f"{b['prepare']}; images: {b.get('image_preprocessing', 'cpu').split(' (')[0]})", n,
            b["qps"],
            b["maxrss_mb"], ratio(b, a, "(a)"))
    if b2:
        row(f"(b') the other prefix-shared path in process ({b2['scoring']})", n, b2["qps"],
            b2["maxrss_mb"], f"{ratio(b2, a, '(a)')}; {ratio(b2, b, '(b)')}")
    if c:
        row("(c) full system over gRPC (evaluator + 1 server)", c["answered"], c["qps"],
            c["maxrss_mb"], f"{ratio(c, b, '(b)')}; server peak {c['server_rss_mb']:.0f} MB")
    if r1:
        row("1 server replica, 1 thread", r1["answered"], r1["qps"], r1["maxrss_mb"], "1.00x")
    if r2:
        row("2 server replicas, 1 thread each", r2["answered"], r2["qps"], r2["maxrss_mb"],
            f"{ratio(r2, r1, '(1 replica)')}; server peak {r2['server_rss_mb']:.0f} MB each")
    if d:
        row("(d) evaluator vs no-op backend, full-size SEED-Bench-2", d["answered"], d["qps"],
            d["maxrss_mb"], f"server peak {d['server_rss_mb']:.0f} MB", useful=False)
        notes.append(
            f"(d): the evaluator spent {d['cpu_s']:.1f} CPU-s on {d['answered']} questions "
            f"({1e6 * d['cpu_s'] / d['answered']:.0f} us each: one client core sustains "
            f"{d['answered'] / d['cpu_s']:.0f} questions/s); the no-op server and the evaluator "
            f"share this machine's {os.cpu_count()} cores, and the server's per-call gRPC cost is "
            "the limit of the end-to-end rate.")
    if flops_q:
        amount = (f"{flops_q / 1e12:.3f} TFLOP" if flops_q > 1e11
                  else f"{flops_q / 1e9:.3f} GFLOP")
        notes.append(f"Model FLOPs per question (bench/flops.py, this sample's token counts): "
                     f"{amount}" + (f"; MFU against {peak / 1e12:.0f} TFLOP/s dense bf16 ({gpu})."
                                    if peak else "."))
    for label, r in (("(a)", a), ("(b)", b), ("(b')", b2)):
        if r and r.get("gpu_peak_mb"):
            notes.append(f"{label}: device memory peak {r['gpu_peak_mb']:.0f} MB; model built in "
                         f"{r['model_load_s']:.1f} s.")

    in_proc = {k: r for k, r in (("(a)", a), ("(b)", b), ("(b')", b2)) if r}
    grpc_s = (1 / c["qps"] - 1 / b["qps"]) if c and b else None
    sample_text = (f"`seedbench sample-data --mix {args.mix}` (SEED-Bench-2's L1+L2 proportions)"
                   if args.mix else f"`seedbench sample-data --per-dim {args.per_dim}` levels L1+L2")
    model_text = ("LLaVA-1.5-7B's shapes, random weights made on the device"
                  if args.preset == "7b" else f"tiny LLaVA, preset `{args.preset}` (random weights)")
    command = " ".join(sys.argv[1:])
    report = "\n".join([
        f"## Run of {datetime.date.today().isoformat()} ({args.device}, preset `{args.preset}`)",
        "",
        f"Machine: {machine(args.device)}.  ",
        f"Model: {model_text}; data: {sample_text} ({n} questions, 4 options).  ",
        f"Command: `python bench/run_bench.py {command}` ({time.time() - t_start:.0f} s in all).",
        "",
        "| measurement | questions | questions/s | peak RSS of that process (MB) | ratio | "
        "model compute |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *[f"- {x}" for x in notes],
        "",
        *(breakdown(in_proc, grpc_s) if in_proc else []),
        "",
        *(generate_bench.report(g_inproc, g_grpc, f"python bench/run_bench.py {command}")
          if g_inproc or g_grpc else []),
    ])
    print(report)
    results["report"] = report
    dump()
    out = ROOT / args.out
    header = "<!-- bench runs below are appended by bench/run_bench.py -->"
    text = out.read_text() if out.exists() else f"# Performance\n\n{header}\n"
    if header not in text:
        text += f"\n{header}\n"
    out.write_text(text.rstrip() + "\n\n" + report)
    return 0 if a and b and c else 1


if __name__ == "__main__":
    sys.exit(one_line_errors.run(main))
