"""A rich progress bar on stderr: done/total, rate, ETA and the error count.

Answers can land thousands of times a second; the bar is updated at most ten
times a second so drawing it never costs the run throughput.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from evaluator.run.runner import Progress as ProgressSink

UPDATE_EVERY_S = 0.1


class RichProgress(ProgressSink):
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]questions"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}/s"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), TextColumn("[red]{task.fields[errors]} errors"),
            console=self.console, transient=False)
        self.task = None
        self.errors = 0
        self._pending = 0
        self._last = 0.0

    def start(self, total: int, done: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("run", total=total, completed=done, errors=0, rate="-")

    def advance(self, ok: bool) -> None:
        self.errors += not ok
        self._pending += 1
        now = time.monotonic()
        if now - self._last >= UPDATE_EVERY_S:
            self._flush(now)

    def _flush(self, now: float) -> None:
        self.bar.update(self.task, advance=self._pending, errors=self.errors)
        speed = self.bar.tasks[0].speed
        self.bar.update(self.task, rate=f"{speed:.1f}" if speed else "-")
        self._pending = 0
        self._last = now

    def stop(self) -> None:
        if self.task is not None:
            self._flush(time.monotonic())
        self.bar.stop()
