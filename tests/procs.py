"""Servers in tests: real processes on free loopback ports (serving.processes), always stopped.

A free port is picked here and bound by the server a moment later, so another
process (a parallel test worker's server, an outgoing connection) may take it in
between. The servers bind without SO_REUSEPORT, so the loser fails to bind and
exits: a start counts only once the server's own log says it listens on its port,
and a start that lost its port is retried on a fresh one. Ports that must refuse
connections are held bound (never listening) for as long as a test needs them.
"""

from __future__ import annotations

import contextlib
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from serving.processes import ServerProcess, alive, health_status, start_server, stop, wait_serving
from tests.waiting import wait_until

BIND_ATTEMPTS = 5
LOST_PORT = ("Failed to bind to address", "cannot bind", "Address already in use")


def log_text(proc: ServerProcess) -> str:
    try:
        return Path(proc.log).read_text(errors="replace") if proc.log else ""
    except OSError:
        return ""


def listening(proc: ServerProcess) -> bool:
    """The server's log says it holds its port (printed once bound, before the model loads)."""
    return f"listening on {proc.target} (" in log_text(proc)


def start_listening(module: str, args: list[str], log: Path, timeout: float = 120.0,
                    **kw) -> ServerProcess:
    """serving.processes.start_server, returned once the server listens on its port or has
    exited for another reason (wait_serving then names it); retried on a fresh port when
    another process bound the picked one first (a port of the caller's own is tried once)."""
    for _ in range(BIND_ATTEMPTS):
        proc = start_server(module, args, log=log, **kw)
        try:
            wait_until(lambda p=proc: listening(p) or not alive(p), timeout,
                       what=f"{module} listening on {proc.target} or exited (log {log})")
        except TimeoutError:
            stop(proc)
            raise
        if alive(proc) or kw.get("port") or not any(m in log_text(proc) for m in LOST_PORT):
            return proc
    raise RuntimeError(f"{module}: every picked port was taken first ({BIND_ATTEMPTS} tries); log {log}")


def metrics_port(proc: ServerProcess, timeout: float = 60.0) -> int:
    """The /metrics port a server started with `--metrics-port 0` printed."""
    found = wait_until(lambda: re.search(r"^metrics on [^\s:]+:(\d+)/metrics$", log_text(proc), re.M),
                       timeout, what=f"{proc.name}'s metrics port in {proc.log}")
    return int(found.group(1))


def first_health(target: str, timeout: float = 60.0) -> int:
    """The first grpc.health.v1 status a starting server answers (it answers once listening)."""
    return wait_until(lambda: [s] if (s := health_status(target)) is not None else None, timeout,
                      what=f"a health answer from {target}")[0]


@contextlib.contextmanager
def server_process(module: str, args: list[str], wait: bool = True,
                   timeout: float = 120.0) -> Iterator[tuple[str, ServerProcess]]:
    """Run `python -m module serve ...` and yield (target, process); its log names a failed start."""
    with tempfile.TemporaryDirectory(prefix="seedbench-test-") as tmp:
        proc = start_listening(module, args, Path(tmp) / "server.log", timeout)
        try:
            if wait:
                wait_serving(proc, timeout)
            yield proc.target, proc
        finally:
            stop(proc)


def model_server(args: list[str], **kw):
    return server_process("model_server.cli", args, **kw)


@contextlib.contextmanager
def refusing_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port bound but not listening: a connection to it is refused, and no other process
    can start listening there while the block runs (as it could on a free_port())."""
    with socket.socket() as s:
        s.bind((host, 0))
        yield s.getsockname()[1]
