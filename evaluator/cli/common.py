"""What every command shares: the stderr console, one-line errors and warnings, and the
Reporter that prints a run's messages as they happen."""

from __future__ import annotations

from rich.console import Console

from evaluator.reports.console import say
from evaluator.run.config import ConfigError, flag
from evaluator.run.session import Reporter

err = Console(stderr=True)


def error(message: str) -> int:
    """Print a user-facing error (never parsed as markup: paths may hold brackets); exit 2."""
    say(err, f"error: {message}", "red", soft_wrap=True)
    return 2


def config_error(exc: ConfigError) -> int:
    """A bad setting, named by its command-line option."""
    return error(exc.message(flag))


def warn(message: str) -> None:
    say(err, f"warning: {message}", "yellow", soft_wrap=True)


class ConsoleReporter(Reporter):
    """A run's warnings and notes on stderr, and its progress bar."""

    def __init__(self, progress=None):
        self.progress = progress

    def warn(self, text: str) -> None:
        warn(text)

    def info(self, text: str) -> None:
        say(err, text, soft_wrap=True)
