"""Bring a results store written by an older evaluator to today's schema, every row kept.

Older `answers` tables lack key columns: `clip` (before L3; rows keep clip=''),
`preset` (before presets; see OLD_PRESET), `content_key` (before answers were
tied to what was asked; rows get '' = "unknown content", which no question's
key equals, so a new run asks those questions again while reports of the old
run still show them), and kept each error as one text
`"STATUS: message (after N attempt(s))"`, parsed here once into the status,
message and attempts columns. The table is rebuilt in one transaction.
"""

from __future__ import annotations

import re
import sqlite3

# Rows written before presets: the chat-template mean without end token is today's
# "chat-mean"; other old variants (ppl-sum, end-of-turn) match no preset and stay apart.
OLD_PRESET = "CASE WHEN method IN ('ppl', 'letter') AND include_eot = 0 THEN 'chat-mean' ELSE '' END"
_OLD_COLUMNS = ("fingerprint", "method", "preset", "include_eot", "clip", "question_id",
                "dimension", "status", "prediction", "answer", "scores", "error")
_STATUS = re.compile(r"([A-Z][A-Z_]+): ")
_ATTEMPTS = re.compile(r" \(after (\d+) attempt\(s\)\)$")


def parse_error_text(text: str | None) -> tuple[str, str, int | None]:
    """(status, message, attempts) of an old error text; texts without a status give ERROR."""
    text = text or ""
    status = "ERROR"
    m = _STATUS.match(text)
    if m:
        status, text = m.group(1), text[m.end():]
    attempts = None
    m = _ATTEMPTS.search(text)
    if m:
        attempts, text = int(m.group(1)), text[:m.start()]
    return status, text, attempts


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def upgrade(db: sqlite3.Connection, answers_ddl: str, insert_sql: str) -> None:
    """Migrate `answers` (rebuilt with `answers_ddl`, filled with `insert_sql`) and `selection`."""
    cols = _columns(db, "answers")
    if "content_key" not in cols:
        select = []
        for c in _OLD_COLUMNS:
            if c in cols:
                select.append(c)
            else:
                select.append(OLD_PRESET if c == "preset" else "''")
        with db:
            db.execute("BEGIN")
            old = db.execute(f"SELECT {', '.join(select)} FROM answers").fetchall()
            db.execute("DROP TABLE answers")
            db.execute(answers_ddl)
            db.executemany(insert_sql, (
                (*r[:6], "", *r[6:11], *(parse_error_text(r[11]) if r[7] == "error"
                                         else (None, None, None)))
                for r in old))
    if "content_key" not in _columns(db, "selection"):
        with db:
            db.execute("BEGIN")
            db.execute("ALTER TABLE selection ADD COLUMN choices TEXT")
            db.execute("ALTER TABLE selection ADD COLUMN content_key TEXT")
            # The old run's answers, made before content keys, stay visible in its reports.
            db.execute("UPDATE selection SET content_key = ''")
