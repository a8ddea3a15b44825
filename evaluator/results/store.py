"""SQLite results store: one row per answered (or errored) question, committed at once.

Rows are keyed by (model fingerprint, method, preset, include_end_of_turn, clip,
question_id), so a rerun skips what is answered, a killed run loses at most
the calls in flight, and INSERT OR REPLACE can never duplicate an answer. WAL
mode keeps every commit durable against a killed process. `clip` is the
fingerprint of the CLIP model an answer depends on, "" when it depends on none
(`RunKey.clip_for` decides which): a row belongs to a key when its clip is ""
or the key's, so a run with another CLIP model redoes only the answers that
used CLIP.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from evaluator.data.dataset import Question
from evaluator.results.runkey import RunKey

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    fingerprint TEXT NOT NULL,
    method TEXT NOT NULL,
    preset TEXT NOT NULL,
    include_eot INTEGER NOT NULL,
    clip TEXT NOT NULL DEFAULT '',
    question_id TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    prediction TEXT,
    answer TEXT NOT NULL,
    scores TEXT,
    error TEXT,
    PRIMARY KEY (fingerprint, method, preset, include_eot, clip, question_id)
);
CREATE TABLE IF NOT EXISTS selection (
    question_id TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    dimension INTEGER NOT NULL,
    answer TEXT NOT NULL,
    unsupported TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INSERT = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_COLUMNS = ("fingerprint, method, preset, include_eot, clip, question_id, dimension, status,"
            " prediction, answer, scores, error")
# Rows written before presets: the chat-template mean without end token is today's
# "chat-mean"; other old variants (ppl-sum, end-of-turn) match no preset and stay apart.
_OLD_PRESET = "CASE WHEN method IN ('ppl', 'letter') AND include_eot = 0 THEN 'chat-mean' ELSE '' END"
# The rows of a key: same model, method and preset, made without CLIP or with the key's CLIP.
_OF_KEY = ("{a}fingerprint=? AND {a}method=? AND {a}preset=? AND {a}include_eot=?"
           " AND {a}clip IN ('', ?)")

__all__ = ["Row", "RunKey", "Store", "StoreError"]


@dataclass(frozen=True)
class Row:
    question_id: str
    idx: int
    dimension: int
    answer: str
    status: str | None  # None: not attempted yet
    prediction: str | None
    error: str | None
    unsupported: str | None


class StoreError(Exception):
    """The results store cannot be opened (not a folder, not SQLite, another schema)."""


class Store:
    FILE = "results.sqlite"

    def __init__(self, out_dir: str | Path):
        """Open (or create) DIR/results.sqlite; raises StoreError naming the path and why."""
        self.path = Path(out_dir) / self.FILE
        try:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{out_dir}: cannot create the output folder "
                             f"({exc.strerror or exc})") from None
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the results store ({exc})") from None
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.Error as exc:
            self.db.close()
            raise StoreError(f"{self.path}: not a seedbench results store ({exc})") from None
        self._writer: threading.Thread | None = None
        self._writer_error: Exception | None = None

    def _migrate(self) -> None:
        """Older stores lack key columns: `clip` (before L3; rows keep clip='') and `preset`
        (before presets; see _OLD_PRESET). Rebuild the table with every row kept."""
        cols = [r[1] for r in self.db.execute("PRAGMA table_info(answers)")]
        if "clip" in cols and "preset" in cols:
            return
        old = _COLUMNS.replace("preset", "preset" if "preset" in cols else _OLD_PRESET)
        if "clip" not in cols:
            old = old.replace("clip", "''")
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("ALTER TABLE answers RENAME TO answers_old")
            self.db.execute(SCHEMA.split(";")[0])
            self.db.execute(f"INSERT INTO answers ({_COLUMNS}) SELECT {old} FROM answers_old")
            self.db.execute("DROP TABLE answers_old")

    def close(self) -> None:
        self.stop_writer()
        self.db.close()

    @classmethod
    def count_answers(cls, out_dir: str | Path, status: str = "ok") -> int:
        """How many answers (or errors) the store in `out_dir` holds right now, read-only: for
        watching a run from another process. 0 while there is no readable store yet."""
        path = Path(out_dir) / cls.FILE
        if not path.is_file():
            return 0
        try:
            with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True,
                                                    timeout=1)) as db:
                return db.execute("SELECT COUNT(*) FROM answers WHERE status = ?",
                                  (status,)).fetchone()[0]
        except sqlite3.Error:
            return 0

    # Writes during a run go through one writer thread with its own connection:
    # the event loop only enqueues, and the writer commits whatever is queued at
    # once (one transaction per wake-up, so a burst costs one commit). An answer
    # is durable milliseconds after it arrives; a killed run loses at most the
    # queue, which the next run asks again.
    def start_writer(self) -> None:
        if self._writer is not None:
            return
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._writer.start()

    def stop_writer(self) -> None:
        """Commit everything queued, then stop the writer (reads see all answers after)."""
        if self._writer is None:
            return
        self._queue.put(None)
        self._writer.join()
        self._writer = None
        if self._writer_error is not None:
            err, self._writer_error = self._writer_error, None
            raise err

    def _write_loop(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            done = False
            while not done:
                batch = [self._queue.get()]
                while True:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                done = batch[-1] is None or None in batch
                rows = [b for b in batch if b is not None]
                if rows:
                    with db:
                        db.execute("BEGIN")
                        db.executemany(_INSERT, rows)
        except Exception as exc:  # surfaced by stop_writer; the run's answers stay retryable
            self._writer_error = exc
        finally:
            db.close()

    def _write(self, row: tuple) -> None:
        if self._writer is not None:
            self._queue.put(row)
        else:
            self.db.execute(_INSERT, row)

    def set_meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_selection(self, questions: Iterable[Question], unsupported: dict[str, str]) -> None:
        """Record which questions this run covers (order + gt), replacing the last selection."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM selection")
            self.db.executemany(
                "INSERT INTO selection VALUES (?, ?, ?, ?, ?)",
                ((q.question_id, q.index, q.dimension, q.answer, unsupported.get(q.question_id))
                 for q in questions))

    def answered_ids(self, key: RunKey) -> set[str]:
        cur = self.db.execute(
            f"SELECT question_id FROM answers WHERE {_OF_KEY.format(a='')} AND status='ok'",
            (*key.params(), key.clip))
        return {r[0] for r in cur}

    def put_answer(self, key: RunKey, q: Question, prediction: str | None, scores) -> None:
        """An answer; prediction None is an unparsed reply (answered, wrong, no guess)."""
        self._write((*key.row_params(q.dimension), q.question_id, q.dimension, "ok", prediction,
                     q.answer, json.dumps(scores), None))

    def put_error(self, key: RunKey, q: Question, error: str) -> None:
        self._write((*key.row_params(q.dimension), q.question_id, q.dimension, "error", None,
                     q.answer, None, error))

    def rows(self, key: RunKey) -> list[Row]:
        """The selected questions in annotation order, with this key's answer if any.

        Should a question hold both a CLIP-free and a CLIP-keyed row, the CLIP-keyed one
        (the more specific) is taken.
        """
        cur = self.db.execute(
            "SELECT s.question_id, s.idx, s.dimension, s.answer, a.status, a.prediction, a.error,"
            " s.unsupported FROM selection s LEFT JOIN answers a ON a.question_id = s.question_id"
            f" AND {_OF_KEY.format(a='a.')} ORDER BY s.idx, a.clip = ''",
            (*key.params(), key.clip))
        out: list[Row] = []
        for r in cur:
            if not out or out[-1].question_id != r[0]:
                out.append(Row(*r))
        return out

    def scores(self, key: RunKey, question_ids: Iterable[str]) -> dict[str, object]:
        """The stored evidence (option scores, L3 records) of these questions' answers."""
        wanted = set(question_ids)
        cur = self.db.execute(
            f"SELECT question_id, scores FROM answers WHERE {_OF_KEY.format(a='')}"
            " AND status='ok' ORDER BY clip = ''", (*key.params(), key.clip))
        out: dict[str, object] = {}
        for qid, sc in cur:  # a CLIP-keyed row comes first and wins, as in rows()
            if qid in wanted and sc and qid not in out:
                out[qid] = json.loads(sc)
        return out
