"""A rich progress bar on stderr: done/total, rate, ETA and the error count."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from evaluator.runner import Progress as ProgressSink


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
        self._n = 0

    def start(self, total: int, done: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("run", total=total, completed=done, errors=0, rate="-")

    def advance(self, ok: bool) -> None:
        self.errors += not ok
        self._n += 1
        t = self.bar.tasks[0]
        speed = t.speed
        self.bar.update(self.task, advance=1, errors=self.errors,
                        rate=f"{speed:.1f}" if speed else "-")

    def stop(self) -> None:
        self.bar.stop()
