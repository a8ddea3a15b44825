"""`make demo`: sample data -> tiny model -> local model server -> evaluator -> tables.

The model server runs as a child process (this module never imports it) on a
free loopback port and is always stopped, on success, error or Ctrl-C.
`clip_server_spec` is the hook where a CLIP server joins once L3 scoring exists.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evaluator import cli, sample_data
from evaluator.client import health_serving


@dataclass
class ServerSpec:
    """A server to run for the demo: `python -m module serve ARGS --host H --port P`."""

    name: str
    module: str
    args: list[str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


@contextlib.contextmanager
def serve(spec: ServerSpec, log_path: Path, timeout_s: float = 600.0) -> Iterator[str]:
    """Start the server, wait for health SERVING, yield its target; always stop it."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    cmd = [sys.executable, "-m", spec.module, "serve", *spec.args,
           "--host", "127.0.0.1", "--port", str(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while not health_serving(target):
                if proc.poll() is not None:
                    raise RuntimeError(f"{spec.name} server exited with {proc.returncode}; "
                                       f"see {log_path}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{spec.name} server not SERVING after {timeout_s}s")
                time.sleep(0.2)
            print(f"{spec.name} server SERVING at {target} (log: {log_path})", file=sys.stderr)
            yield target
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def model_server_spec(args: argparse.Namespace, out: Path) -> ServerSpec:
    if args.backend == "synthetic":
        return ServerSpec("model", "model_server.cli",
                          ["--backend", "synthetic", "--model", "demo"])
    model_dir = out / "model"
    if not (model_dir / "config.json").exists():
        print(f"building tiny {args.arch} model in {model_dir}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "model_server.cli", "tiny", "--arch", args.arch,
                        "--out", str(model_dir)], env=child_env(), check=True)
    return ServerSpec("model", "model_server.cli", ["--backend", "hf", "--model", str(model_dir)])


def clip_server_spec(args: argparse.Namespace, out: Path) -> ServerSpec | None:
    """Hook: return the CLIP server to start once L3 (dims 25-27) is scored; none yet."""
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluator.demo", description=__doc__)
    p.add_argument("--out", default="demo-out")
    p.add_argument("--backend", choices=["hf", "synthetic"], default="hf")
    p.add_argument("--arch", default="llava", help="tiny model architecture (hf backend)")
    p.add_argument("--per-dim", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", default="ppl")
    args = p.parse_args(argv)
    out = Path(args.out)
    data = out / "data"
    ann = sample_data.write_v2(data, seed=args.seed, per_dim=args.per_dim)
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(serve(model_server_spec(args, out), out / "model-server.log"))
        clip = clip_server_spec(args, out)
        if clip is not None:
            stack.enter_context(serve(clip, out / "clip-server.log"))
        return cli.main([
            "run", "--annotations", str(ann),
            "--media-root", f"cc3m={data / 'cc3m'}",
            "--media-root", f"SEED-Bench v2={data / 'seed_bench_v2'}",
            "--model", target, "--out", str(out / "results"), "--method", args.method,
        ])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
