"""Errored questions made visible: one status per error, reasons grouped, errors.jsonl.

Every stored error text starts with a status: the gRPC status name for a call
that failed (`INVALID_ARGUMENT: ...`), or one of the evaluator's own for a
failure before or after the call (`MEDIA`, `QUESTION`, `IO`, `INTERNAL`).
Reasons are grouped by status and message with the question id taken out,
so a thousand questions refused for one cause show as one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from serving.atomic_files import atomic_open

ERRORS_FILE = "errors.jsonl"
EXAMPLES = 3
_STATUS = re.compile(r"([A-Z][A-Z_]+): ")
_ATTEMPTS = re.compile(r" \(after \d+ attempt\(s\)\)$")


def split(text: str | None) -> tuple[str, str]:
    """(status, message) of a stored error text; old texts without a status give ERROR."""
    text = text or ""
    m = _STATUS.match(text)
    if m:
        return m.group(1), text[m.end():]
    return "ERROR", text


@dataclass(frozen=True)
class ErroredQuestion:
    question_id: str
    dimension: int
    status: str
    message: str

    def as_dict(self) -> dict:
        return {"question_id": self.question_id, "dimension": self.dimension,
                "status": self.status, "message": self.message}


@dataclass
class ErrorGroup:
    status: str
    reason: str  # the message with the question id replaced by {question}
    count: int = 0
    examples: list[str] = field(default_factory=list)  # the first question ids

    def as_dict(self) -> dict:
        return {"status": self.status, "reason": self.reason, "count": self.count,
                "examples": list(self.examples)}


def errored(rows: Iterable) -> list[ErroredQuestion]:
    """The errored questions among store rows (`Row`), in annotation order."""
    out = []
    for r in rows:
        if r.status == "error":
            status, message = split(r.error)
            out.append(ErroredQuestion(r.question_id, r.dimension, status, message))
    return out


def reason_of(e: ErroredQuestion) -> str:
    reason = _ATTEMPTS.sub("", e.message)
    if e.question_id:
        reason = reason.replace(e.question_id, "{question}")
    return reason


def group(errors: Iterable[ErroredQuestion]) -> list[ErrorGroup]:
    """Errors grouped by (status, reason), the most common first (ties: first seen)."""
    groups: dict[tuple[str, str], ErrorGroup] = {}
    for e in errors:
        g = groups.setdefault((e.status, reason_of(e)), ErrorGroup(e.status, reason_of(e)))
        g.count += 1
        if len(g.examples) < EXAMPLES:
            g.examples.append(e.question_id)
    return sorted(groups.values(), key=lambda g: -g.count)


def write_jsonl(path: str | Path, errors: Iterable[ErroredQuestion]) -> int:
    """One line per errored question (atomically replaced); returns the line count."""
    n = 0
    with atomic_open(path) as f:
        for e in errors:
            f.write(json.dumps(e.as_dict()) + "\n")
            n += 1
    return n
