"""Stepped clocks for code that waits or looks at the time.

SteppedClock: for code that waits: its sleeps are recorded and return at once, and its
time.monotonic() moves on by exactly what it slept.

Installed over one module's `time` and `asyncio` names, it lets a test assert the waits
that code asked for (a Retry-After honoured, a time budget never outlasted) as numbers,
instead of measuring elapsed wall time, which a loaded machine stretches.
"""

from __future__ import annotations

import asyncio
import time
from types import ModuleType

import pytest


class _Patched:
    """A module with some of its names replaced; everything else is the module's own."""

    def __init__(self, module: ModuleType, **names):
        self._module = module
        self.__dict__.update(names)

    def __getattr__(self, name: str):
        return getattr(self._module, name)


class SteppedClock:
    def __init__(self):
        self.now = time.monotonic()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float, result=None):
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is
        return result

    def install(self, monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> SteppedClock:
        """Replace `module`'s time.monotonic and asyncio.sleep (what it looks up at call time)."""
        monkeypatch.setattr(module, "time", _Patched(time, monotonic=self.monotonic))
        monkeypatch.setattr(module, "asyncio", _Patched(asyncio, sleep=self.sleep))
        return self


class TickingClock:
    """Stands in for the `time` module in deadline tests: each look at the monotonic clock is
    one second later, so a count of looks proves where generation stopped."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now
