"""Where a backend's time goes, stage by stage (benchmarks switch it on; off it costs nothing).

On an accelerator the device is synchronised around each stage so its time is
charged to the stage that queued it; that serialises work, so a profiled run is
slower than a timed one and the two are measured separately.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager, nullcontext


class StageTimes:
    def __init__(self, sync: Callable[[], None] | None = None):
        self.seconds: dict[str, float] = defaultdict(float)
        self._sync = sync or (lambda: None)

    @contextmanager
    def __call__(self, name: str):
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] += time.perf_counter() - t0


def stage(times: StageTimes | None, name: str):
    """`with stage(times, "forward"):` times the block when profiling, else does nothing."""
    return times(name) if times is not None else nullcontext()
