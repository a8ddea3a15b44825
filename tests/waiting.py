"""Order events in tests by polling the state they change, never by sleeping a fixed time.

A fixed sleep is either too short on a loaded machine (a flaky test) or longer than
needed everywhere else (a slow one); a poll returns as soon as the state is there and
fails with a message naming what never happened.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.02,
               what: str = "") -> T:
    """Call predicate until it returns something truthy and return that; TimeoutError
    (naming `what`, else the predicate) once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        _check(deadline, timeout, what, predicate)
        time.sleep(interval)
    return value


async def wait_until_async(predicate: Callable[[], T], timeout: float = 30.0,
                           interval: float = 0.005, what: str = "") -> T:
    """wait_until on an event loop: the loop keeps running (other tasks progress) between polls."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        _check(deadline, timeout, what, predicate)
        await asyncio.sleep(interval)
    return value


def _check(deadline: float, timeout: float, what: str, predicate: Callable) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"not within {timeout:g}s: {what or getattr(predicate, '__name__', '?')}")


def in_background(fn: Callable, *args, **kw) -> tuple[threading.Thread, dict]:
    """Start fn(*args, **kw) in a thread (a blocking gRPC call a test must outlast); the dict
    gets "result", or "error" for the call's grpc.RpcError, once the thread is joined."""
    import grpc

    out: dict = {}

    def run():
        try:
            out["result"] = fn(*args, **kw)
        except grpc.RpcError as exc:
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    return t, out
