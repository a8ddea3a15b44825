"""`make demo`: sample data -> tiny models -> local servers -> evaluator -> tables.

Servers run as child processes (this module never imports them) on free
loopback ports and are always stopped, on success, error or Ctrl-C. A tiny
CLIP server (`clip_server.cli serve --model tiny`) runs for the whole demo and
is passed as `--clip`. The first model is the committed demo LLaVA
(models/demo-llava, trained on the sample data's pixels by `make demo-model`,
evaluated on a seed it was not trained on); it cannot generate images, so its L3
shows n/a; it also answers the SEED-Bench-1 sample, whose video dims are
sampled from real webm/mp4/avi files. Then a tiny Janus model with random weights, which scores and
generates images, is evaluated on all levels to show the L3 plumbing: its
scores are chance-level by design.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from evaluator import RunConfig
from evaluator.cli.run import run_and_show
from evaluator.data import sample_data
from evaluator.run.methods import METHODS
from serving import processes

DEMO_MODEL = Path(__file__).resolve().parent.parent / "models" / "demo-llava"


@dataclass
class ServerSpec:
    """A server to run for the demo: `python -m module serve ARGS --host H --port P`."""

    name: str
    module: str
    args: list[str]


@contextlib.contextmanager
def serve(spec: ServerSpec, log_path: Path, timeout_s: float = 600.0) -> Iterator[str]:
    """Start the server, wait for health SERVING, yield its target; always stop it."""
    proc = processes.start_server(spec.module, spec.args, name=f"{spec.name} server", log=log_path)
    try:
        processes.wait_serving(proc, timeout_s)
        print(f"{spec.name} server SERVING at {proc.target} (log: {log_path})", file=sys.stderr)
        yield proc.target
    finally:
        processes.stop(proc)


def uses_demo_model(args: argparse.Namespace) -> bool:
    return args.arch == "llava" and not args.random and (DEMO_MODEL / "config.json").exists()


def model_server_spec(args: argparse.Namespace, out: Path) -> ServerSpec:
    if args.backend == "synthetic":
        return ServerSpec("model", "model_server.cli",
                          ["--backend", "synthetic", "--model", "demo"])
    if uses_demo_model(args):
        return ServerSpec("model", "model_server.cli", ["--backend", "hf", "--model", str(DEMO_MODEL)])
    model_dir = out / "model"
    if not (model_dir / "config.json").exists():
        print(f"building tiny {args.arch} model in {model_dir}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "model_server.cli", "tiny", "--arch", args.arch,
                        "--out", str(model_dir)], env=processes.child_env(), check=True)
    return ServerSpec("model", "model_server.cli", ["--backend", "hf", "--model", str(model_dir)])


def janus_server_spec(args: argparse.Namespace, out: Path) -> ServerSpec:
    model_dir = out / "model-janus"
    if not (model_dir / "config.json").exists():
        print(f"building tiny janus model in {model_dir}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "model_server.cli", "tiny", "--arch", "janus",
                        "--out", str(model_dir)], env=processes.child_env(), check=True)
    return ServerSpec("janus model", "model_server.cli",
                      ["--backend", "janus", "--model", str(model_dir)])


def clip_server_spec(args: argparse.Namespace, out: Path) -> ServerSpec | None:
    """The CLIP server scoring L3 (dims 25-27): the seeded tiny CLIP, or none with --no-clip."""
    if args.no_clip:
        return None
    return ServerSpec("clip", "clip_server.cli", ["--model", "tiny"])


def evaluate_model(title: str, spec: Callable[[], ServerSpec], clip: str | None,
                   args: argparse.Namespace, ann: Path, data: Path, results: Path, log: Path,
                   v1: Path | None = None) -> int:
    """Build and serve one model, evaluate it (all levels), print its tables; always stop it.

    With `v1` (a SEED-Bench-1 sample file) the same server also answers SEED-Bench-1,
    its video dims sampled from the raw videos, into `results`-v1.
    """
    print(f"\n=== {title} ===", file=sys.stderr)
    with serve(spec(), log) as target:
        rc = run_and_show(RunConfig(annotations=ann, media_roots=sample_data.media_roots(data),
                                    model=target, out=results, method=args.method, clip=clip))
        if v1 is not None:
            print(f"\n=== {title}: SEED-Bench-1 (video dims from the raw videos) ===",
                  file=sys.stderr)
            rc = run_and_show(RunConfig(
                annotations=v1, media_roots=sample_data.media_roots(v1.parent, v1=True),
                model=target, out=f"{results}-v1", method=args.method)) or rc
        return rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluator.demo", description=__doc__)
    p.add_argument("--out", default="demo-out")
    p.add_argument("--backend", choices=["hf", "synthetic"], default="hf")
    p.add_argument("--arch", default="llava", help="tiny model architecture (hf backend)")
    p.add_argument("--random", action="store_true",
                   help="a random-weight tiny model instead of the trained demo LLaVA")
    p.add_argument("--per-dim", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=METHODS, default="ppl")
    p.add_argument("--no-clip", action="store_true", help="no CLIP server: L3 shows n/a")
    p.add_argument("--no-janus", action="store_true",
                   help="skip the tiny Janus model (the one that shows L3)")
    args = p.parse_args(argv)
    out = Path(args.out)
    data = out / "data"
    t0 = time.monotonic()
    ann = sample_data.write_v2(data, seed=args.seed, per_dim=args.per_dim)
    v1 = sample_data.write_v1(out / "data-v1", seed=args.seed, per_dim=args.per_dim)
    rc = 0
    with contextlib.ExitStack() as stack:
        clip_spec = clip_server_spec(args, out)
        clip = (stack.enter_context(serve(clip_spec, out / "clip-server.log"))
                if clip_spec is not None else None)
        first = ("synthetic model" if args.backend == "synthetic"
                 else f"demo LLaVA trained on sample-data seed {sample_data.DEMO_TRAIN_SEED}, "
                      f"evaluated on seed {args.seed}" if uses_demo_model(args)
                 else f"tiny {args.arch} (random weights)")
        rc = evaluate_model(first, lambda: model_server_spec(args, out), clip, args, ann, data,
                      out / "results", out / "model-server.log", v1=v1) or rc
        if not args.no_janus and args.backend == "hf":
            rc = evaluate_model("tiny janus, random weights: L3 plumbing only, chance-level scores",
                          lambda: janus_server_spec(args, out), clip, args, ann, data,
                          out / "results-janus", out / "janus-server.log") or rc
    print(f"demo finished in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return rc


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
