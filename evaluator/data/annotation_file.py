"""Reading an annotation file defensively: whatever is in it, a bad question stays one question.

- The file as a whole must be readable JSON holding a non-empty list of questions
  (or `{"questions": [...]}`); anything else is an `AnnotationError` naming the path.
- JSON nested deeper than `MAX_DEPTH` (which no real question is) cannot take the
  parser down: the too-deep values are cut and stand as `TOO_DEEP`, so only the
  question holding them is rejected.
- An integer too long for Python to convert stands as `TOO_LONG` instead of
  failing the whole file.
- Text that is not valid Unicode (a lone surrogate from a `\\udxxx` escape) is
  found per field before it can reach SQLite, gRPC or the console.
- The benchmark is decided by the majority of questions; the ones that look
  like the other benchmark are returned so the run can report them.
- Fields the benchmark does not have (a fifth choice, extras) are collected as
  warnings: they are ignored, never silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evaluator.data import dimensions as D

MAX_DEPTH = 64
TOO_DEEP = "\x00seedbench: value nested too deeply"
MAX_DIGITS = 4000  # below Python's int conversion limit, which would fail the whole file
TOO_LONG = "\x00seedbench: integer with too many digits"
KNOWN_FIELDS = frozenset({
    "question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer",
    "question_type_id", "data_id", "data_type", "data_source", "level", "subpart", "version",
    "segment",
})
V2_FIELDS = ("level", "subpart", "version", "data_source")
_TOKENS = re.compile(r'["\[\]{}\\]')


class AnnotationError(Exception):
    """The file as a whole cannot be read (not JSON, wrong top-level shape, no questions)."""


@dataclass(frozen=True)
class Document:
    """An annotation file as read: its questions, its `question_type` map (None for a bare
    list) and the sha256 of its bytes (which version of the file a result came from)."""

    questions: list
    question_type: object
    sha256: str


def read_questions(path: Path) -> list:
    """The file's list of questions; raises AnnotationError naming the path."""
    return load_document(path).questions


def load_document(path: Path) -> Document:
    """The file read once: questions, `question_type` map and sha256; raises AnnotationError
    naming the path."""
    try:
        data = Path(path).read_bytes()
        text = data.decode("utf-8-sig")  # a byte-order mark is harmless
    except (OSError, ValueError) as exc:
        raise AnnotationError(f"{path}: cannot read annotations: {exc}") from None
    try:
        try:
            doc = json.loads(text, parse_int=_int)
        except RecursionError:
            doc = json.loads(cap_depth(text, MAX_DEPTH), parse_int=_int)
    except ValueError as exc:
        raise AnnotationError(f"{path}: cannot read annotations: {exc}") from None
    question_type = None
    if isinstance(doc, dict):
        question_type = doc.get("question_type")
        doc = doc.get("questions")
    if not isinstance(doc, list):
        raise AnnotationError(f"{path}: expected a list of questions or "
                              '{"questions": [...]} at the top level')
    if not doc:
        raise AnnotationError(f"{path}: holds no questions")
    return Document(doc, question_type, hashlib.sha256(data).hexdigest())


def question_type_differences(question_type: object, benchmark: str) -> list[str]:
    """How the file's `question_type` map ({name: id}) differs from the benchmark's
    dimension names; empty when it agrees or is absent. The ids decide everything
    (groups, levels), so a difference is reported, never acted on."""
    if question_type is None:
        return []
    if not isinstance(question_type, dict):
        return [f"is a {type(question_type).__name__}, not a {{name: id}} map"]
    known = D.names(benchmark)
    out = []
    for name, dim in question_type.items():
        shown = printable(name) if isinstance(name, str) else repr(name)
        if isinstance(dim, bool) or not isinstance(dim, int):
            out.append(f"{shown!r} has id {dim!r}, not an integer")
        elif dim not in known:
            out.append(f"{shown!r} has id {dim}, not a {benchmark} dimension")
        elif name != known[dim]:
            out.append(f"dimension {dim} is named {shown!r} there, {known[dim]!r} here")
    return out


def _int(digits: str) -> int | str:
    return int(digits) if len(digits) <= MAX_DIGITS else TOO_LONG


def cap_depth(text: str, limit: int) -> str:
    """The JSON text with every array/object that opens below `limit` levels replaced by
    the string TOO_DEEP (strings and escapes are respected)."""
    out: list[str] = []
    last = depth = 0
    in_string = False
    skip = -1  # index of an escaped character
    cut = None
    for m in _TOKENS.finditer(text):
        i, c = m.start(), m.group()
        if i == skip:
            continue
        if in_string:
            if c == "\\":
                skip = i + 1
            elif c == '"':
                in_string = False
            continue
        if c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth == limit + 1:
                cut = i
        else:
            if depth == limit + 1 and cut is not None:
                out.append(text[last:cut])
                out.append(json.dumps(TOO_DEEP))
                last, cut = i + 1, None
            depth -= 1
    out.append(text[last:])
    return "".join(out)


def _strings(value, depth: int = 0) -> Iterator[str]:
    """Every string in a parsed value (keys included), down to MAX_DEPTH."""
    if isinstance(value, str):
        yield value
    elif depth < MAX_DEPTH and isinstance(value, list):
        for v in value:
            yield from _strings(v, depth + 1)
    elif depth < MAX_DEPTH and isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v, depth + 1)


def field_problems(q: dict) -> list[tuple[str, str]]:
    """(field, reason) for values nested too deeply or holding text that is not Unicode."""
    out = []
    for fld, value in q.items():
        name = printable(fld)
        for s in _strings(value):
            if s == TOO_DEEP:
                out.append((name, f"is nested deeper than {MAX_DEPTH} levels"))
                break
            if s == TOO_LONG:
                out.append((name, f"holds an integer of more than {MAX_DIGITS} digits"))
                break
            if not is_unicode(s):
                out.append((name, "is not valid Unicode text (a lone surrogate such as "
                                  "\\ud800)"))
                break
    return out


def is_unicode(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(s: str) -> str:
    """`s` safe to print and store: lone surrogates written as \\udxxx escapes."""
    return s if is_unicode(s) else s.encode("utf-8", "backslashreplace").decode("utf-8")


def looks_v2(q: dict) -> bool:
    if any(k in q for k in V2_FIELDS):
        return True
    dim = q.get("question_type_id")
    return isinstance(dim, int) and not isinstance(dim, bool) and dim > 12


def detect(raw: list, ids: list[str]) -> tuple[str, list[str]]:
    """(benchmark, ids of the questions that look like the other one), by majority.

    SEED-Bench-2 questions carry level/subpart/version/data_source or dims above 12.
    A tie goes to SEED-Bench-1.
    """
    v2, v1 = [], []
    for q, qid in zip(raw, ids, strict=True):
        if isinstance(q, dict):
            (v2 if looks_v2(q) else v1).append(qid)
    return (D.V2, v1) if len(v2) > len(v1) else (D.V1, v2)


def extra_fields(raw: list, ids: list[str]) -> dict[str, list[str]]:
    """field -> ids of the questions carrying it, for fields SEED-Bench questions lack."""
    out: dict[str, list[str]] = {}
    for q, qid in zip(raw, ids, strict=True):
        if isinstance(q, dict):
            for k in q:
                if k not in KNOWN_FIELDS:
                    out.setdefault(printable(k), []).append(qid)
    return out
