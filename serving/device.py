"""The one thread that owns the device, watched.

Every batch (scores, generations, images) runs on this one thread, one job after
another; the micro-batchers in front of it bound what waits and drop what is
past its deadline (serving.batching). `busy_s()` says how long the current job
has run, which the health watchdog (serving.lifecycle) turns into NOT_SERVING
past `stuck_after_s`, so one request cannot wedge a server unnoticed.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any


class DeviceThread(concurrent.futures.ThreadPoolExecutor):
    """A one-worker executor that knows how long its current job has been running."""

    def __init__(self):
        super().__init__(1, thread_name_prefix="device")
        self._since: float | None = None

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        def timed():
            self._since = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                self._since = None

        return super().submit(timed)

    def busy_s(self) -> float:
        """Seconds the current job has been running; 0 when idle."""
        since = self._since
        return 0.0 if since is None else time.monotonic() - since


def deadline_from(time_remaining: float | None) -> float | None:
    """A monotonic deadline from grpc's `context.time_remaining()` (None: no deadline)."""
    if time_remaining is None or time_remaining > 10 * 365 * 86400:
        return None
    return time.monotonic() + time_remaining
