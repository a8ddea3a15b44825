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
- The benchmark is decided by the majority of questions (each looks like the
  first definition whose own fields it carries); the ones that look like another
  benchmark are returned so the run can report them.
- Fields the benchmark does not have (a fifth choice, extras) are collected as
  warnings: they are ignored, never silently.
- A parquet snapshot (a `.parquet` file, a hub-cache link to one, or a folder of
  shards) is read by evaluator.data.parquet_snapshot: the same question dicts,
  plus references to each question's embedded images.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.data import benchmarks as B
from evaluator.data import parquet_snapshot
from evaluator.data.embedded_images import EmbeddedImage

MAX_DEPTH = 64
TOO_DEEP = "\x00seedbench: value nested too deeply"
MAX_DIGITS = 4000  # below Python's int conversion limit, which would fail the whole file
TOO_LONG = "\x00seedbench: integer with too many digits"
_TOKENS = re.compile(r'["\[\]{}\\]')


class AnnotationError(Exception):
    """The file as a whole cannot be read (not JSON, wrong top-level shape, no questions)."""


@dataclass
class Document:
    """An annotation file's content: its questions as dicts, its `question_type` map (None
    for a bare list or a snapshot), the sha256 that identifies its version (of the file's
    bytes; of a snapshot's shard list, see parquet_snapshot.digest), each question's
    embedded images (a snapshot; None for JSON, whose images are files under the media
    roots) and what was read (`source`: the file, or the snapshot's shards)."""

    questions: list
    question_type: object = None
    sha256: str = ""
    embedded: list[tuple[EmbeddedImage, ...]] | None = None
    source: dict = field(default_factory=dict)


def read_questions(path: Path) -> list:
    """The file's list of questions; raises AnnotationError naming the path."""
    return load_document(path).questions


def load_document(path: Path) -> Document:
    """The questions of a JSON file or a parquet snapshot, read once; raises AnnotationError
    naming the path."""
    path = Path(path)
    try:
        files = parquet_snapshot.shards(path)
        if files is not None:
            return _read_snapshot(path, files)
    except parquet_snapshot.SnapshotError as exc:
        raise AnnotationError(str(exc)) from None
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read annotations: {exc}") from None
    return _read_json(path)


def _read_snapshot(path: Path, files: list[Path]) -> Document:
    questions, embedded = [], []
    for row in parquet_snapshot.read_rows(files):
        questions.append(row.fields)
        embedded.append(row.images)
    if not questions:
        raise AnnotationError(f"{path}: holds no questions")
    source = parquet_snapshot.provenance(path, files)
    return Document(questions, None, parquet_snapshot.digest(source), embedded, source)


def _read_json(path: Path) -> Document:
    try:
        data = path.read_bytes()
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
    return Document(doc, question_type, hashlib.sha256(data).hexdigest(), None,
                    {"format": "json", "path": str(path)})


def question_type_differences(question_type: object, benchmark: B.Benchmark) -> list[str]:
    """How the file's `question_type` map ({name: id}) differs from the benchmark's
    dimension names; empty when it agrees or is absent. The ids decide everything
    (groups, levels), so a difference is reported, never acted on."""
    if question_type is None:
        return []
    if not isinstance(question_type, dict):
        return [f"is a {type(question_type).__name__}, not a {{name: id}} map"]
    known = benchmark.dimensions
    out = []
    for name, dim in question_type.items():
        shown = printable(name) if isinstance(name, str) else repr(name)
        if isinstance(dim, bool) or not isinstance(dim, int):
            out.append(f"{shown!r} has id {dim!r}, not an integer")
        elif dim not in known:
            out.append(f"{shown!r} has id {dim}, not a {benchmark.name} dimension")
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


def detect(raw: list, ids: list[str]) -> tuple[B.Benchmark, dict[str, list[str]]]:
    """(benchmark, {other benchmark: ids of the questions that look like it}), by majority.

    Each question looks like the first definition whose own fields it carries
    (SEED-Bench-2-Plus: question_image_type, or choice_A without question_type_id;
    SEED-Bench-2: level/subpart/version/data_source or dims above 12); a tie goes
    to the benchmark listed last (SEED-Bench-1).
    """
    seen: dict[str, list[str]] = {name: [] for name in B.BENCHMARKS}
    for q, qid in zip(raw, ids, strict=True):
        if isinstance(q, dict):
            seen[B.classify(q).name].append(qid)
    winner = max(reversed(list(B.BENCHMARKS)), key=lambda name: len(seen[name]))
    return B.BENCHMARKS[winner], {n: w for n, w in seen.items() if w and n != winner}


def extra_fields(raw: list, ids: list[str], known: frozenset[str]) -> dict[str, list[str]]:
    """field -> ids of the questions carrying it, for fields the benchmark's questions lack."""
    out: dict[str, list[str]] = {}
    for q, qid in zip(raw, ids, strict=True):
        if isinstance(q, dict):
            for k in q:
                if k not in known:
                    out.setdefault(printable(k), []).append(qid)
    return out
