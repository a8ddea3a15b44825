"""Servers in tests: real processes on free loopback ports (serving.processes), always stopped."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from serving.processes import ServerProcess, start_server, stop, wait_serving


@contextlib.contextmanager
def server_process(module: str, args: list[str], wait: bool = True,
                   timeout: float = 120.0) -> Iterator[tuple[str, ServerProcess]]:
    """Run `python -m module serve ...` and yield (target, process); its log names a failed start."""
    with tempfile.TemporaryDirectory(prefix="seedbench-test-") as tmp:
        proc = start_server(module, args, log=Path(tmp) / "server.log")
        try:
            if wait:
                wait_serving(proc, timeout)
            yield proc.target, proc
        finally:
            stop(proc)


def model_server(args: list[str], **kw):
    return server_process("model_server.cli", args, **kw)
