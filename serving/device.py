"""The one thread that owns the device: bounded, watched, deadline-aware.

Every batch, generation and image generation runs on this one thread, one job
after another. Three protections keep one request from wedging a server:
- `reserve()` bounds the jobs waiting for it (QueueFull, RESOURCE_EXHAUSTED at
  once, instead of unbounded waiting);
- `run_by(deadline, fn)` drops a job whose client deadline passed while it
  waited (DeadlinePassed), so no work is done for a caller that has gone;
- `busy_s()` says how long the current job has run, which the health watchdog
  (serving.lifecycle) turns into NOT_SERVING past `stuck_after_s`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from serving.errors import DeadlinePassed, QueueFull


class DeviceThread(concurrent.futures.ThreadPoolExecutor):
    """A one-worker executor that knows how long its current job has been running."""

    def __init__(self, max_waiting: int = 1024):
        super().__init__(1, thread_name_prefix="device")
        self.max_waiting = max_waiting
        self._since: float | None = None
        self._waiting = 0
        self._lock = threading.Lock()
        self.dropped = 0  # jobs whose deadline passed before they ran

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

    @contextlib.contextmanager
    def reserve(self) -> Iterator[None]:
        """A place among the jobs waiting for (or running on) the device, or QueueFull at once."""
        with self._lock:
            if self._waiting >= self.max_waiting:
                raise QueueFull(f"device queue full: {self._waiting} requests waiting "
                                f"(max_queue {self.max_waiting}); retry later")
            self._waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def run_by(self, deadline: float | None, fn: Callable, *args: Any) -> Any:
        """Call fn(*args) on the device thread unless `deadline` (time.monotonic) has passed."""
        if deadline is not None and time.monotonic() >= deadline:
            self.dropped += 1
            raise DeadlinePassed("the client's deadline passed while the request waited; not run")
        return fn(*args)


def deadline_from(time_remaining: float | None) -> float | None:
    """A monotonic deadline from grpc's `context.time_remaining()` (None: no deadline)."""
    if time_remaining is None or time_remaining > 10 * 365 * 86400:
        return None
    return time.monotonic() + time_remaining
