"""Start project servers as real processes on free loopback ports, and always stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from evaluator.demo import free_port  # noqa: F401 - tests import it from here

ROOT = Path(__file__).resolve().parent.parent


def test_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(ROOT))
    return env


def health_status(target: str, service: str = "", timeout: float = 1.0) -> int | None:
    with grpc.insecure_channel(target) as ch:
        try:
            return health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout).status
        except grpc.RpcError:
            return None


def wait_serving(target: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before serving")
        if health_status(target) == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{target} not SERVING after {timeout}s")


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def server_process(module: str, args: list[str], wait: bool = True,
                   timeout: float = 120.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `python -m module serve ... --port N` and yield (target, process)."""
    port = free_port()
    target = f"127.0.0.1:{port}"
    cmd = [sys.executable, "-m", module, "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, env=test_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        if wait:
            wait_serving(target, proc, timeout)
        yield target, proc
    finally:
        stop(proc)
        if proc.stdout:
            proc.stdout.close()


def model_server(args: list[str], **kw):
    return server_process("model_server.cli", args, **kw)
