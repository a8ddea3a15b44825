"""Process mode: the deployment without a cluster.

    python -m deploy.local up --model-dir DIR [--replicas N] [--clip] [--backend hf|synthetic]
    python -m deploy.local status
    python -m deploy.local down

`up` starts the same programs the container images run (`seedbench-model-server
serve`, `seedbench-clip-server serve`, through `python -m <module>` of this
interpreter) as background processes on loopback ports, waits until each one's
grpc.health.v1 answers SERVING, and records them in <run-dir>/state.json. The
evaluator then takes the printed targets (`--model 127.0.0.1:A,127.0.0.1:B`;
the client spreads calls over the listed replicas). `down` sends SIGTERM, which
makes the servers drain in-flight calls, and SIGKILL after --timeout-s.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from serving import arg_types
from serving.atomic_files import write_atomic
from serving.processes import ServerExited, alive, health, start_server, stop, wait_serving
from serving.processes import ServerProcess as Proc
from serving.security import ClientSecurity, SecurityError, add_server_args
from serving.shutdown import DRAIN_GRACE_S

STATE_FILE = "state.json"
MODULES = {"model": "model_server.cli", "clip": "clip_server.cli"}


def default_run_dir() -> Path:
    env = os.environ.get("SEEDBENCH_LOCAL_RUN_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"seedbench-local-{os.getuid()}"


def spawn(name: str, role: str, args: list[str], host: str, port: int, run_dir: Path) -> Proc:
    return start_server(MODULES[role], args, name=name, role=role, host=host, port=port,
                        log=run_dir / "logs" / f"{name}.log", detach=True)


def wait_ready(procs: list[Proc], timeout_s: float,
               security: ClientSecurity | None = None) -> str | None:
    """Wait for SERVING on every process; None, or what went wrong."""
    try:
        wait_serving(procs, timeout_s, security=security or ClientSecurity())
    except (ServerExited, TimeoutError) as exc:
        return str(exc)
    return None


# ----------------------------------------------------------------------------- state

def load_state(run_dir: Path) -> dict | None:
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["procs"] = [Proc(**p) for p in data.get("procs", [])]
    return data


def save_state(run_dir: Path, procs: list[Proc], settings: dict) -> dict:
    targets = {role: ",".join(p.target for p in procs if p.role == role)
               for role in ("model", "clip") if any(p.role == role for p in procs)}
    state = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "settings": settings,
             "targets": targets, "procs": [p.record() for p in procs]}
    write_atomic(run_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")
    return state


def _ports(value: str, n: int, what: str) -> list[int]:
    if not value:
        return [0] * n
    ports = [int(x) for x in value.split(",") if x.strip()]
    if len(ports) != n:
        raise SystemExit(f"{what}: {len(ports)} port(s) given for {n} process(es)")
    return ports


# ----------------------------------------------------------------------------- security

SERVER_SECURITY_FLAGS = ("tls_cert", "tls_key", "tls_client_ca", "auth_token_file")


def server_security_args(settings: dict) -> list[str]:
    """The servers' --tls-*/--auth-token-file, passed through to every process (paths only)."""
    return [f"--{k.replace('_', '-')}={settings[k]}" for k in SERVER_SECURITY_FLAGS
            if settings.get(k)]


def health_security(settings: dict) -> ClientSecurity:
    """What the launcher's own health checks need: TLS (--tls-ca) and, for mutual TLS, a
    client certificate (--client-cert/--client-key). Health needs no token."""
    if settings.get("tls_cert") and not settings.get("tls_ca"):
        raise SecurityError("--tls-cert needs --tls-ca (the CA the launcher's health checks "
                            "trust)")
    if settings.get("tls_client_ca") and not settings.get("client_cert"):
        raise SecurityError("--tls-client-ca needs --client-cert/--client-key for the "
                            "launcher's health checks")
    return ClientSecurity.from_args(argparse.Namespace(
        tls_ca=settings.get("tls_ca"), tls_cert=settings.get("client_cert"),
        tls_key=settings.get("client_key"), auth_token_file=None))


# ----------------------------------------------------------------------------- commands

@dataclass
class Spec:
    """One process to start: `python -m MODULES[role] serve ARGS --host H --port P`."""

    name: str
    role: str  # model | clip
    args: list[str]
    port: int = 0  # 0: a free one


@contextlib.contextmanager
def starting(run_dir: Path) -> Iterator[bool]:
    """Hold the run dir's lock while an `up` starts processes; False if another holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".up.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"error: another `up` is starting processes in {run_dir}", file=sys.stderr)
            yield False
            return
        yield True


def already_running(run_dir: Path) -> bool:
    old = load_state(run_dir)
    if old and any(alive(p) for p in old["procs"]):
        print(f"error: already running (state {run_dir / STATE_FILE}); "
              "run `python -m deploy.local down` first", file=sys.stderr)
        return True
    return False


def start_all(run_dir: Path, specs: list[Spec], host: str, timeout_s: float,
              settings: dict, security: ClientSecurity | None = None) -> dict | None:
    """Start every process, wait for SERVING, record the state; on any failure stop
    all of them and say why. Returns the state, or None."""
    run_dir.mkdir(parents=True, exist_ok=True)
    procs: list[Proc] = []
    try:
        for spec in specs:
            procs.append(spawn(spec.name, spec.role, spec.args, host, spec.port, run_dir))
        err = wait_ready(procs, timeout_s, security)
    except BaseException:
        stop(procs, 5)
        raise
    if err:
        notes = stop(procs, 5)
        print(f"error: {err}", file=sys.stderr)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        print("stopped: " + ", ".join(f"{p.name} (pid {p.pid})" for p in procs), file=sys.stderr)
        return None
    state = save_state(run_dir, procs, settings)
    for p in procs:
        print(f"{p.name}: {p.target} SERVING (pid {p.pid}, log {p.log})")
    return state


def cmd_up(args: argparse.Namespace) -> int:
    with starting(args.run_dir) as ok:
        return _up(args) if ok else 2


def _up(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if already_running(run_dir):
        return 2
    if args.backend != "synthetic" and not Path(args.model_dir).is_dir():
        print(f"error: --model-dir {args.model_dir} is not a directory", file=sys.stderr)
        return 2
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("func", "command")}
    try:
        security = health_security(settings)
    except SecurityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model_ports = _ports(args.ports, args.replicas, "--ports")
    model_args = ["--backend", args.backend, "--model", str(args.model_dir),
                  "--grace-s", str(args.grace_s),
                  *(["--device", args.device] if args.device else []),
                  *(["--dtype", args.dtype] if args.dtype else []),
                  *server_security_args(settings), *args.server_arg]
    specs = [Spec(f"model-{i}", "model", model_args, port) for i, port in enumerate(model_ports)]
    if args.clip:
        specs.append(Spec("clip-0", "clip", [
            "--model", args.clip_model, "--grace-s", str(args.grace_s),
            *(["--checkpoint", args.clip_checkpoint] if args.clip_checkpoint else []),
            *(["--device", args.device] if args.device else []),
            *server_security_args(settings)], args.clip_port))
    state = start_all(run_dir, specs, args.host, args.timeout_s, settings, security)
    if state is None:
        return 1
    t = state["targets"]
    hint = f"seedbench run --annotations FILE --media-root DIR --out DIR --model {t['model']}"
    if "clip" in t:
        hint += f" --clip {t['clip']}"
    for flag, key in (("--tls-ca", "tls_ca"), ("--tls-cert", "client_cert"),
                      ("--tls-key", "client_key"), ("--auth-token-file", "auth_token_file")):
        if settings.get(key):
            hint += f" {flag} {settings[key]}"
    print(f"state: {run_dir / STATE_FILE}\nnext:  {hint}\nstop:  python -m deploy.local down"
          + (f" --run-dir {run_dir}" if run_dir != default_run_dir() else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = load_state(args.run_dir)
    if state is None:
        print(f"not running (no {args.run_dir / STATE_FILE})")
        return 3
    rows = []
    security = health_security(state.get("settings", {}))
    for p in state["procs"]:
        up = alive(p)
        rows.append({"name": p.name, "pid": p.pid, "target": p.target, "running": up,
                     "health": health(p.target, security=security) if up else "EXITED"})
    if args.json:
        print(json.dumps({"targets": state["targets"], "processes": rows}, indent=2))
    else:
        for role, target in state["targets"].items():
            print(f"{role} target: {target}")
        for r in rows:
            print(f"  {r['name']:<8} pid {r['pid']:<8} {r['target']:<21} {r['health']}")
    return 0 if all(r["health"] == "SERVING" for r in rows) else 1


def cmd_down(args: argparse.Namespace) -> int:
    state = load_state(args.run_dir)
    if state is None:
        print(f"nothing to stop (no {args.run_dir / STATE_FILE})")
        return 0
    procs = state["procs"]
    timeout_s = args.timeout_s
    if timeout_s is None:  # the servers' drain time plus a margin
        timeout_s = float(state.get("settings", {}).get("grace_s", DRAIN_GRACE_S)) + 10.0
    for note in stop(procs, timeout_s):
        print(f"warning: {note}", file=sys.stderr)
    left = [p for p in procs if alive(p)]
    if left:
        print("error: still running: " + ", ".join(f"{p.name} (pid {p.pid})" for p in left),
              file=sys.stderr)
        return 1
    (args.run_dir / STATE_FILE).unlink(missing_ok=True)
    print(f"stopped {len(procs)} process(es)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m deploy.local", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def run_dir_arg(s: argparse.ArgumentParser) -> None:
        s.add_argument("--run-dir", type=Path, default=default_run_dir(),
                       help="state file and logs (default: $SEEDBENCH_LOCAL_RUN_DIR or "
                            f"{default_run_dir()})")

    u = sub.add_parser("up", help="start model server replicas (and a CLIP server)")
    u.add_argument("--model-dir", required=True,
                   help="model directory (hf backend), or the model name (synthetic)")
    u.add_argument("--backend", default="hf", help="model server backend: hf (default), synthetic")
    u.add_argument("--replicas", type=arg_types.positive_int, default=1, help="model server processes")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--ports", default="", help="comma-separated, one per replica (default: free)")
    u.add_argument("--device", default="", help="torch device for every server (default: auto)")
    u.add_argument("--dtype", default="")
    u.add_argument("--grace-s", type=arg_types.non_negative_float, default=DRAIN_GRACE_S,
                   help=f"drain time on SIGTERM (default {DRAIN_GRACE_S:g})")
    u.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for seedbench-model-server serve (repeatable), "
                        "e.g. --server-arg=--max-batch=16")
    u.add_argument("--clip", action="store_true", help="also start a CLIP server")
    u.add_argument("--clip-model", default="tiny", help="open_clip model name (default: tiny)")
    u.add_argument("--clip-checkpoint", default="")
    u.add_argument("--clip-port", type=arg_types.port, default=0)
    u.add_argument("--timeout-s", type=arg_types.non_negative_float, default=600.0,
                   help="wait this long for SERVING")
    add_server_args(u)  # passed to every server
    u.add_argument("--tls-ca", metavar="FILE",
                   help="with --tls-cert: the CA the launcher's health checks trust")
    u.add_argument("--client-cert", metavar="FILE",
                   help="with --tls-client-ca: the launcher's health checks' client certificate")
    u.add_argument("--client-key", metavar="FILE", help="that certificate's key")
    run_dir_arg(u)
    u.set_defaults(func=cmd_up)

    s = sub.add_parser("status", help="targets and grpc.health.v1 status of each process")
    s.add_argument("--json", action="store_true")
    run_dir_arg(s)
    s.set_defaults(func=cmd_status)

    d = sub.add_parser("down", help="SIGTERM (drain), then SIGKILL after --timeout-s")
    d.add_argument("--timeout-s", type=arg_types.non_negative_float, default=None,
                   help="SIGKILL after this long (default: the servers' --grace-s + 10)")
    run_dir_arg(d)
    d.set_defaults(func=cmd_down)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
