"""samples.jsonl: one line per selected question with everything the store knows of its answer.

Where summary.json counts, this file shows each question: what the model said
(option log-probabilities for the Score methods, the generated text for
generate, the generation record for L3), the prediction against the answer,
the error as (status, message, attempts), and the content key tying the answer
to exactly what was asked. It is rebuilt from the store with the other outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

from evaluator.data.dataset import LETTERS
from evaluator.results.runkey import RunKey
from serving.atomic_files import atomic_open

SAMPLES_FILE = "samples.jsonl"


def _options(row, scores) -> list[dict] | None:
    """Per option in choice order: its letter and text, and the Score the model gave it."""
    if not isinstance(scores, list):
        return None
    texts = row.choices or (None,) * len(scores)
    return [{"letter": letter, "text": text, "logprob_sum": s.get("logprob_sum"),
             "num_tokens": s.get("num_tokens")}
            for letter, text, s in zip(LETTERS, texts, scores, strict=False)]


def sample(row, key: RunKey, scores) -> dict:
    """One line: a store row (evaluator.results.store.Row) and its stored scores (or None)."""
    answered = row.status == "ok"
    evidence = scores if isinstance(scores, dict) else {}
    l3 = row.dimension in key.clip_dims  # the benchmark definition's generation dims
    return {
        "question_id": row.question_id, "dimension": row.dimension,
        "method": key.method, "preset": key.preset, "content_key": row.content_key,
        "status": row.status, "unsupported": row.unsupported,
        "prediction": row.prediction, "answer": row.answer,
        "correct": (row.prediction == row.answer) if answered else None,
        "options": None if l3 else _options(row, scores),
        "generated": None if l3 else evidence.get("text"),
        "parse": None if l3 else evidence.get("parse"),
        "unparsed": evidence.get("unparsed"),
        "generation": scores if l3 and answered else None,
        "error": row.error.as_dict() if row.error is not None else None,
    }


def write(path: str | Path, store, key: RunKey, rows: list) -> int:
    """One line per selected question, in annotation order (atomically replaced)."""
    evidence = store.scores(key, [r.question_id for r in rows if r.status == "ok"])
    n = 0
    with atomic_open(path) as f:
        for r in rows:
            f.write(json.dumps(sample(r, key, evidence.get(r.question_id))) + "\n")
            n += 1
    return n
