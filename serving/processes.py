"""Start a server process, wait until gRPC health says SERVING, stop it by its own PID.

The one way the demo, the local launcher, the tests and the benchmark run
`python -m <module> serve ...`: torch-free (stdlib, grpc, grpc_health), so an
evaluator-only install can use it. A process is only ever stopped by the PID it
was started with (checked against its start time, so a reused PID is left
alone): SIGTERM first, which makes the servers drain, SIGKILL after a grace.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving import environment
from serving.security import PLAIN, ClientSecurity
from serving.shutdown import DRAIN_GRACE_S

ROOT = Path(__file__).resolve().parent.parent
SERVING = health_pb2.HealthCheckResponse.SERVING


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """This environment with serving.environment's defaults (offline, idle OpenMP threads
    asleep, ...) and the project root first on PYTHONPATH."""
    env = dict(os.environ)
    environment.apply(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- health

def health_status(target: str, service: str = "", timeout_s: float = 1.0,
                  security: ClientSecurity = PLAIN) -> int | None:
    """grpc.health.v1 Check: the ServingStatus number, or None when nothing answers.
    security: --tls-ca (and client certificate) for a TLS server; health needs no token."""
    with security.channel(target) as ch:
        try:
            return health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s).status
        except grpc.RpcError:
            return None


def health(target: str, service: str = "", timeout_s: float = 1.0,
           security: ClientSecurity = PLAIN) -> str:
    """The status by name (SERVING, NOT_SERVING, ...), or UNREACHABLE."""
    status = health_status(target, service, timeout_s, security)
    if status is None:
        return "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


# ----------------------------------------------------------------------------- processes

def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) from /proc, or None if not there."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


@dataclass
class ServerProcess:
    """A started server. The fields are what a state file keeps; a process this
    interpreter started also holds its Popen (not a field), for its exit code."""

    name: str  # model-0, clip, ...
    role: str  # what it serves: model, clip
    pid: int
    start_time: int | None  # /proc/<pid>/stat starttime: guards against PID reuse
    host: str
    port: int
    log: str  # its stdout+stderr, "" when discarded
    cmd: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.popen: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def record(self) -> dict:
        """The fields, for a state file (ServerProcess(**record) reads it back)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def send_signal(self, sig: int) -> None:
        """Signal it if it is still the process that was started."""
        if alive(self):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:  # exited just now
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout_s: float | None = None) -> int | None:
        """Wait for the exit; the exit code when this interpreter started it."""
        if self.popen is not None:
            return self.popen.wait(timeout_s)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while alive(self):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} (pid {self.pid}) still running")
            time.sleep(0.05)
        return None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = Path(self.log).read_text(errors="replace").splitlines() if self.log else []
        except OSError:
            return ""
        return "\n".join("    " + ln for ln in text[-lines:])


def alive(proc: ServerProcess) -> bool:
    """Still running, and still the process that was started (not a reused PID)."""
    if proc.popen is not None:
        return proc.popen.poll() is None
    st = proc_stat(proc.pid)
    if st is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # no procfs: signal 0 is the best test there is
            os.kill(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    state, start = st
    if state in ("Z", "X"):
        return False
    return proc.start_time is None or start == proc.start_time


def start_server(module: str, args: list[str], *, name: str = "", role: str = "",
                 host: str = "127.0.0.1", port: int = 0, log: Path | None = None,
                 detach: bool = False) -> ServerProcess:
    """Run `python -m module serve ARGS --host H --port P` in the background.

    port 0 picks a free port here, so the target is known at once. Output goes
    to `log` (else nowhere). detach: a session of its own, so the server
    outlives this process and ignores its Ctrl-C.
    """
    port = port or free_port(host)
    cmd = [sys.executable, "-m", module, "serve", *args, "--host", host, "--port", str(port)]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "wb")  # noqa: SIM115 - the child holds it; closed below
    else:
        out = subprocess.DEVNULL
    try:
        popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 env=child_env(), cwd=ROOT, start_new_session=detach)
    finally:
        if log is not None:
            out.close()
    st = proc_stat(popen.pid)
    proc = ServerProcess(name or module, role or module, popen.pid, st[1] if st else None, host, port,
                         str(log) if log is not None else "", cmd)
    proc.popen = popen
    return proc


class ServerExited(RuntimeError):
    """A server exited before it was SERVING."""


def wait_serving(procs: ServerProcess | list[ServerProcess], timeout_s: float = 120.0,
                 poll_s: float = 0.1, security: ClientSecurity = PLAIN) -> None:
    """Return once every process answers health SERVING; raise ServerExited or TimeoutError."""
    pending = [procs] if isinstance(procs, ServerProcess) else list(procs)
    deadline = time.monotonic() + timeout_s
    while pending:
        for p in list(pending):
            if not alive(p):
                code = p.popen.returncode if p.popen is not None else None
                where = f"; log {p.log}:\n{p.log_tail()}" if p.log else ""
                raise ServerExited(f"{p.name} exited{f' with {code}' if code is not None else ''} "
                                   f"before SERVING{where}")
            if health_status(p.target, security=security) == SERVING:
                pending.remove(p)
        if pending and time.monotonic() > deadline:
            names = ", ".join(f"{p.name} ({p.target})" for p in pending)
            logs = {str(Path(p.log).parent) for p in pending if p.log}
            raise TimeoutError(f"not SERVING after {timeout_s:g}s: {names}"
                               + (f"; see logs in {', '.join(sorted(logs))}" if logs else ""))
        if pending:
            time.sleep(poll_s)


def stop(procs: ServerProcess | list[ServerProcess], grace_s: float = DRAIN_GRACE_S) -> list[str]:
    """SIGTERM all (they drain in parallel), SIGKILL what is left after grace_s.

    Returns a note for each process that had to be killed.
    """
    procs = [procs] if isinstance(procs, ServerProcess) else list(procs)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in procs):
        time.sleep(0.05)
    notes = []
    for p in procs:
        if alive(p):
            notes.append(f"{p.name} (pid {p.pid}) still running after {grace_s:g}s: SIGKILL")
            p.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in procs):
        time.sleep(0.05)
    return notes
