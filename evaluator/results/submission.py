"""Submission files: written strictly, read tolerantly.

Published result files end lines with "},", carry extra keys (gt_answer) and
repeat ids; the reader accepts all of that (the last prediction for an id wins).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from serving.atomic_files import atomic_open


def write(path: str | Path, rows: Iterable[tuple[str, str]]) -> int:
    """One `{"question_id": ..., "prediction": ...}` per line; returns the line count."""
    n = 0
    with atomic_open(path) as f:
        for qid, pred in rows:
            f.write(json.dumps({"question_id": qid, "prediction": pred}) + "\n")
            n += 1
    return n


@dataclass
class ReadResult:
    predictions: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)  # 1-based line numbers skipped


def read(path: str | Path) -> ReadResult:
    """Predictions of a published result file: JSON lines (ending `},` or not), or one JSON
    array, whole or spread over lines; extra keys ignored, the last prediction for an id wins."""
    out = ReadResult()
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, list):  # one JSON array: item k stands for line k + 1
        for no, obj in enumerate(whole, 1):
            _take(out, no, obj)
        return out
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip().lstrip("[").rstrip(",] \t")
        if not s:
            continue
        try:
            obj = json.loads(s)
        except ValueError:
            out.bad_lines.append(no)
            continue
        _take(out, no, obj)
    return out


def _take(out: ReadResult, no: int, obj: object) -> None:
    try:
        qid, pred = str(obj["question_id"]), obj["prediction"]
    except (KeyError, TypeError):
        out.bad_lines.append(no)
        return
    if qid in out.predictions:
        out.duplicates.append(qid)
    out.predictions[qid] = str(pred).strip()
