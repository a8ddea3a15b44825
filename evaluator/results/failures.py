"""Errored questions made visible: one typed failure per error, reasons grouped, errors.jsonl.

A failure is (status, message, attempts), kept in three store columns and never
parsed back from text. The status is the gRPC status name for a call that
failed (`INVALID_ARGUMENT`), or one of the evaluator's own for a failure before
or after the call (`MEDIA`, `QUESTION`, `IO`, `INTERNAL`); attempts is how often
the failed call was tried (None for a failure that was not a call).

Reasons are grouped by status and message with the question's id and every
number masked (`question {id}: {n} scores for {n} options`), so a thousand
questions refused for one cause show as one line, with a few example ids and
messages as they were.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from serving.atomic_files import atomic_open

ERRORS_FILE = "errors.jsonl"
EXAMPLES = 3  # question ids shown per reason
EXAMPLE_MESSAGES = 2  # distinct unmasked messages shown per reason
# A number standing alone (`4 scores`, `/img/123.jpg`, `1.5`), or the second side of `640x480`;
# digits inside a word (`sha256`, `L3`, `P03`) are part of the word.
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])\d+(?:\.\d+)?|(?<=\dx)\d+")


@dataclass(frozen=True)
class Failure:
    """Why a question has no answer: stored in columns, shown as `STATUS: message`."""

    status: str
    message: str
    attempts: int | None = None  # tries of the failed call; None when no call failed

    def as_dict(self) -> dict:
        return {"status": self.status, "message": self.message, "attempts": self.attempts}

    def __str__(self) -> str:
        tries = f" (after {self.attempts} attempt(s))" if self.attempts else ""
        return f"{self.status}: {self.message}{tries}"


@dataclass(frozen=True)
class ErroredQuestion:
    question_id: str
    dimension: int
    failure: Failure

    def as_dict(self) -> dict:
        return {"question_id": self.question_id, "dimension": self.dimension,
                **self.failure.as_dict()}


@dataclass
class ErrorGroup:
    status: str
    reason: str  # the message with the question id as {id} and numbers as {n}
    count: int = 0
    examples: list[str] = field(default_factory=list)  # the first question ids
    messages: list[str] = field(default_factory=list)  # the first distinct messages, unmasked

    def as_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "count": self.count,
                "examples": list(self.examples), "messages": list(self.messages)}


def errored(rows: Iterable) -> list[ErroredQuestion]:
    """The errored questions among store rows (`Row`), in annotation order."""
    return [ErroredQuestion(r.question_id, r.dimension, r.error)
            for r in rows if r.status == "error" and r.error is not None]


def reason_of(question_id: str, message: str) -> str:
    """The message with the question's own id, then every standalone number, masked."""
    reason = message
    if question_id:
        reason = re.sub(rf"(?<![\w.]){re.escape(question_id)}(?![\w])", "{id}", reason)
    return _NUMBER.sub("{n}", reason)


def group(errors: Iterable[ErroredQuestion]) -> list[ErrorGroup]:
    """Errors grouped by (status, reason), the most common first (ties: first seen)."""
    groups: dict[tuple[str, str], ErrorGroup] = {}
    for e in errors:
        f = e.failure
        reason = reason_of(e.question_id, f.message)
        g = groups.setdefault((f.status, reason), ErrorGroup(f.status, reason))
        g.count += 1
        if len(g.examples) < EXAMPLES:
            g.examples.append(e.question_id)
        if len(g.messages) < EXAMPLE_MESSAGES and f.message not in g.messages:
            g.messages.append(f.message)
    return sorted(groups.values(), key=lambda g: -g.count)


def write_jsonl(path: str | Path, errors: Iterable[ErroredQuestion]) -> int:
    """One line per errored question (atomically replaced); returns the line count."""
    n = 0
    with atomic_open(path) as f:
        for e in errors:
            f.write(json.dumps(e.as_dict()) + "\n")
            n += 1
    return n
