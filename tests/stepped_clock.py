"""A clock for deadline tests: each look is one second later, so a count proves where
generation stopped (no wall-clock asserts)."""

from __future__ import annotations


class SteppedClock:
    """Stands in for the `time` module: each look at the monotonic clock is one second later."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now
