"""One question as the evaluator uses it, parsed from a raw annotation dict by its definition.

The parser checks presence and types of every field the benchmark's definition
(evaluator.data.benchmarks) names, and reports all problems of a question at
once. It reads the variants that copies of the data carry (the hub's parquet
snapshots, hand-made files): choice keys in either case (`choice_a` or
`choice_A`), `question_type_id` as digits in text, a one-element `data_id`
list for a single image. Each variant read is named so the load can say what
it saw; nothing else is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from evaluator.data import annotation_file as AF
from evaluator.data.benchmarks import Benchmark
from evaluator.data.image_source import ImageSource
from evaluator.data.video_frames import VideoClip

LETTERS = ("A", "B", "C", "D")
MAX_ID_CHARS = 1024  # ids go into every request, log line and file name; real ones are short
_DIGITS = re.compile(r"\d{1,6}")


@dataclass(frozen=True)
class Question:
    index: int  # position in the annotation file: fixes output order
    question_id: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str
    dimension: int
    data_ids: tuple[str, ...]
    data_type: str = ""
    data_source: str = ""
    level: str = ""
    subpart: str = ""
    version: str = ""
    segment: tuple[float, float] | None = None  # SEED-Bench-1 dims 11-12: part of the video
    subtype: str = ""  # SEED-Bench-2-Plus: question_image_subtype
    images: tuple[ImageSource, ...] = field(default=(), compare=False)  # files or embedded
    video: VideoClip | None = field(default=None, compare=False)  # raw video: frames sampled


@dataclass(frozen=True)
class Invalid:
    file: str
    question_id: str
    field: str
    reason: str
    position: int = field(default=-1, compare=False)  # index in the file; not written out

    def as_dict(self) -> dict:
        return {"file": self.file, "question_id": self.question_id, "field": self.field,
                "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.file}: question {self.question_id}: {self.field}: {self.reason}"


def question_id(q: object, i: int) -> str:
    """The question's id as it can be printed and stored, else its position `#i`."""
    v = q.get("question_id") if isinstance(q, dict) else None
    if (isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip()
            and len(str(v)) <= MAX_ID_CHARS):
        return AF.printable(str(v))
    return f"#{i}"


def other_case(key: str) -> str:
    """`choice_a` <-> `choice_A`."""
    return key[:-1] + key[-1].swapcase()


def parse(q: object, i: int, bench: Benchmark, file: str, embedded: bool = False
          ) -> tuple[Question | None, list[Invalid], list[str]]:
    """(the question or None, every problem found, the variants read). `embedded`: its
    images are in the snapshot, so no media root (data_source) is needed."""
    if not isinstance(q, dict):
        return None, [Invalid(file, f"#{i}", "(question)", "is not a JSON object", i)], []
    qid = question_id(q, i)
    errs: list[Invalid] = []
    variants: list[str] = []

    def bad(fld: str, reason: str) -> None:
        errs.append(Invalid(file, qid, fld, reason, i))

    problems = AF.field_problems(q)
    if problems:  # text that cannot be stored or sent: nothing else is worth checking
        return None, [Invalid(file, qid, fld, reason, i) for fld, reason in problems], []

    raw_id = q.get("question_id")
    if raw_id is None:
        bad("question_id", "is missing")
    elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
        bad("question_id", f"must be a non-empty string, got {type(raw_id).__name__}")
    elif len(str(raw_id)) > MAX_ID_CHARS:
        bad("question_id", f"is {len(str(raw_id))} characters long; at most {MAX_ID_CHARS}")

    def text(fld: str, value: object) -> str:
        if value is None:
            bad(fld, "is missing")
        elif not isinstance(value, str):
            bad(fld, f"must be a string, got {type(value).__name__}")
        elif not value.strip():
            bad(fld, "is empty")
        else:
            return value
        return ""

    def choice(key: str) -> str:
        if key not in q and other_case(key) in q:
            first, last = bench.choice_keys[0], bench.choice_keys[-1]
            seen = f"choice keys {other_case(first)}..{other_case(last)} (published: {first}..{last})"
            if seen not in variants:
                variants.append(seen)
            key = other_case(key)
        v = q.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return str(v)  # counting answers sometimes come as JSON numbers: same text
        return text(key, v)

    question = text("question", q.get("question"))
    choices = tuple(choice(k) for k in bench.choice_keys)
    answer = q.get("answer")
    if answer is None:
        bad("answer", "is missing")
    elif not isinstance(answer, str) or answer.strip() not in LETTERS:
        bad("answer", f"must be one of A, B, C, D, got {answer!r}")
    dim = _dimension(q, bench, bad, variants)
    data_id = q.get("data_id")
    data_ids: tuple[str, ...] = ()
    if data_id is None:
        bad("data_id", "is missing")
    elif isinstance(data_id, str):
        data_ids = (data_id,)
    elif isinstance(data_id, list) and data_id and all(isinstance(x, str) for x in data_id):
        data_ids = tuple(data_id)
        if len(data_ids) == 1:
            variants.append("data_id as a one-element list")
    else:
        bad("data_id", "must be a string or a non-empty list of strings")
    segment = _segment(q.get("segment"), bad)
    opt = {}
    for fld in ("data_type", "data_source", "level", "subpart", "version"):
        v = q.get(fld, "")
        if not isinstance(v, str):
            bad(fld, f"must be a string, got {type(v).__name__}")
            v = None
        opt[fld] = v
    wrong_type = {k for k, v in opt.items() if v is None}
    opt = {k: v or "" for k, v in opt.items()}
    subtype = ""
    if bench.subtype_field:
        v = q.get(bench.subtype_field, "")
        if isinstance(v, str):
            subtype = v.strip()
        else:
            bad(bench.subtype_field, f"must be a string, got {type(v).__name__}")
    if (bench.root_key and not embedded and not opt[bench.root_key]
            and bench.root_key not in wrong_type):
        bad(bench.root_key, "is missing (needed to pick the media root)")
    if bench.filters:
        if opt["level"] and opt["level"] not in bench.levels:
            bad("level", f"must be one of {', '.join(bench.levels)}, got {opt['level']!r}")
        if opt["version"] and opt["version"] not in bench.versions:
            bad("version", f"must be {' or '.join(bench.versions)}, got {opt['version']!r}")
        if dim is not None:
            opt["level"] = opt["level"] or bench.level_of(dim)
            opt["subpart"] = opt["subpart"] or bench.subpart_of(dim)
    if errs or dim is None:
        return None, errs, variants
    return Question(index=i, question_id=qid, question=question, choices=choices,
                    answer=answer.strip(), dimension=dim, data_ids=data_ids, segment=segment,
                    subtype=subtype, **opt), [], variants


def _dimension(q: dict, bench: Benchmark, bad, variants: list[str]) -> int | None:
    """The question's dimension id: an integer id, or (SEED-Bench-2-Plus) its category."""
    fld = bench.dimension_field
    v = q.get(fld)
    if v is None:
        bad(fld, "is missing")
        return None
    if bench.categories:
        dim = bench.category_id(v) if isinstance(v, str) else None
        if dim is None:
            bad(fld, f"must be one of {', '.join(bench.categories)}, got {v!r}")
        return dim
    if isinstance(v, str) and _DIGITS.fullmatch(v.strip()):
        variants.append(f"{fld} as text")
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        bad(fld, f"must be an integer, got {type(v).__name__}")
        return None
    if v not in bench.dimensions:
        bad(fld, f"unknown dimension id {v} for {bench.name} (valid: 1-{max(bench.dimensions)})")
        return None
    return v


def _segment(v: object, bad) -> tuple[float, float] | None:
    """`segment`: absent/null, or [start, end] numbers (seconds or frame indices)."""
    if v is None:
        return None
    if (isinstance(v, list) and len(v) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
        return v[0], v[1]
    bad("segment", f"must be [start, end] (two numbers), got {v!r}")
    return None
