"""argparse value types and the parser the servers share (the evaluator uses the types too).

Every flag is checked while the command line is parsed, so a bad value exits 2
with one line naming the flag before anything is loaded, instead of failing after
minutes of weight loading or not at all. Dependency-free, so the torch-free
evaluator and the servers use the same ones.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# torch device strings the servers take ("" lets the server pick cuda when present).
_DEVICE = re.compile(r"(|cpu|mps|cuda(:\d+)?)")
_DEVICE_OR_AUTO = re.compile(r"(|auto|cpu|mps|cuda(:\d+)?)")


def _number(convert: Callable[[str], int | float], what: str, low: float, *, above: bool = False,
            high: float | None = None) -> Callable[[str], int | float]:
    """An argparse type: `convert(text)` within [low, high] (above: strictly more than low)."""

    def parse(text: str) -> int | float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < low or (above and value == low):
            raise argparse.ArgumentTypeError(f"{value:g} is not {'>' if above else '>='} {low:g}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value:g} is not <= {high:g}")
        return value

    return parse


positive_int = _number(int, "a whole number", 1)
non_negative_int = _number(int, "a whole number", 0)
port = _number(int, "a port number", 0, high=65535)
non_negative_float = _number(float, "a number", 0.0)
# grpc takes message limits as a 32-bit byte count: below 2048 MiB.
message_mb = _number(float, "a number", 0.0, above=True, high=2047.0)


def _device_type(pattern: re.Pattern, names: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not pattern.fullmatch(text.strip()):
            raise argparse.ArgumentTypeError(f"{text!r} is not {names}")
        return text.strip()

    return parse


# A torch device ("": the server's choice); or_auto also takes auto (shard over every GPU).
device = _device_type(_DEVICE, "cpu, cuda, cuda:N or mps")
device_or_auto = _device_type(_DEVICE_OR_AUTO, "cpu, cuda, cuda:N, mps or auto")


def log_level(text: str) -> str:
    """A logging level name, any case (DEBUG ... CRITICAL)."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return text.upper()


def key_value(text: str) -> tuple[str, str]:
    """KEY=VALUE (dashes in KEY read as underscores): a backend setting."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expects KEY=VALUE, got {text!r}")
    return key.strip().replace("-", "_"), value


class CheckedArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block; exit 2) and which runs
    the chosen command's `check` (a `set_defaults(check=...)` callable) once parsing is done.

    A check sees every flag at once, so it can refuse what no single type can (a setting
    that depends on --backend); a ValueError it raises is reported like a bad flag. Its
    converted values go onto the namespace, so they are converted once, here.
    """

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_known_args(self, args=None, namespace=None):  # noqa: D102 - argparse's hook
        namespace, extras = super().parse_known_args(args, namespace)
        check = vars(namespace).pop("check", None)  # popped: a subcommand's runs once
        if check is not None:
            try:
                check(namespace)
            except ValueError as exc:
                self.error(str(exc))
        return namespace, extras

