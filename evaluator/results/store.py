"""SQLite results store: one row per answered (or errored) question, committed at once.

Rows are keyed by (model fingerprint, method, preset, include_end_of_turn, clip,
question_id, content_key): the run key (evaluator.results.runkey) plus a hash
of exactly what the model was asked (evaluator.results.content_key). A rerun
skips what is answered for the question as it is now, a killed run loses at
most the calls in flight, and INSERT OR REPLACE can never duplicate an answer.
WAL mode keeps every commit durable against a killed process. `clip` is the
fingerprint of the CLIP model an answer depends on, "" when it depends on none
(`RunKey.clip_for` decides which): a row belongs to a key when its clip is ""
or the key's, so a run with another CLIP model redoes only the answers that
used CLIP.

`selection` holds the questions the last run selected, each with the content
key of its current version (NULL until known): reports show only the answer
stored under that key, so an answer to an older version of a question is
never reported as an answer to the new one. `file_digests` remembers media
sha256 by file stat (evaluator.data.digests). Errors are three columns
(status, message, attempts: evaluator.results.failures.Failure).
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from evaluator.data.dataset import Question
from evaluator.results import migrate
from evaluator.results.failures import Failure
from evaluator.results.runkey import RunKey

ANSWERS = """CREATE TABLE IF NOT EXISTS answers (
    fingerprint TEXT NOT NULL,
    method TEXT NOT NULL,
    preset TEXT NOT NULL,
    include_eot INTEGER NOT NULL,
    clip TEXT NOT NULL DEFAULT '',
    question_id TEXT NOT NULL,
    content_key TEXT NOT NULL DEFAULT '',
    dimension INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    prediction TEXT,
    answer TEXT NOT NULL,
    scores TEXT,
    error_status TEXT,
    error_message TEXT,
    error_attempts INTEGER,
    PRIMARY KEY (fingerprint, method, preset, include_eot, clip, question_id, content_key)
)"""
SCHEMA = ANSWERS + """;
CREATE TABLE IF NOT EXISTS selection (
    question_id TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    dimension INTEGER NOT NULL,
    answer TEXT NOT NULL,
    unsupported TEXT,
    choices TEXT,
    content_key TEXT
);
CREATE TABLE IF NOT EXISTS file_digests (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INSERT = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_CURRENT = "UPDATE selection SET content_key = ? WHERE question_id = ?"
_DIGEST = "INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?, ?)"
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
    status: str | None  # None: not attempted yet (for the question as it is now)
    prediction: str | None
    error: Failure | None
    unsupported: str | None
    content_key: str | None = None  # the current version's key; None until known
    choices: tuple[str, ...] | None = None  # as selected (stores from before: None)


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
            migrate.upgrade(self.db, ANSWERS, _INSERT)
        except sqlite3.Error as exc:
            self.db.close()
            raise StoreError(f"{self.path}: not a seedbench results store ({exc})") from None
        self._writer: threading.Thread | None = None
        self._writer_error: Exception | None = None

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
    # the event loop and the media threads only enqueue, and the writer commits
    # whatever is queued at once (one transaction per wake-up, so a burst costs one
    # commit). An answer is durable milliseconds after it arrives; a killed run
    # loses at most the queue, which the next run asks again.
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
                done = None in batch
                statements = [s for item in batch if item is not None for s in item]
                if statements:
                    with db:
                        db.execute("BEGIN")
                        for sql, params in statements:
                            db.execute(sql, params)
        except Exception as exc:  # surfaced by stop_writer; the run's answers stay retryable
            self._writer_error = exc
        finally:
            db.close()

    def _write(self, *statements: tuple[str, tuple]) -> None:
        """Statements committed together (by the writer thread while it runs)."""
        if self._writer is not None:
            self._queue.put(statements)
            return
        with self.db:
            self.db.execute("BEGIN")
            for sql, params in statements:
                self.db.execute(sql, params)

    def set_meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_selection(self, questions: Iterable[Question], unsupported: dict[str, str]) -> None:
        """Record which questions this run covers (order, gt, choices), replacing the last
        selection; each question's content key is set once known (`set_content_keys`)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM selection")
            self.db.executemany(
                "INSERT INTO selection VALUES (?, ?, ?, ?, ?, ?, NULL)",
                ((q.question_id, q.index, q.dimension, q.answer, unsupported.get(q.question_id),
                  json.dumps(list(q.choices))) for q in questions))

    def set_content_keys(self, keys: Mapping[str, str | None]) -> None:
        """The content key of each question as it is now (None: not known before asking)."""
        self._write(*((_CURRENT, (k, qid)) for qid, k in keys.items()))

    def answered_ids(self, key: RunKey) -> set[str]:
        """Questions with an answer under the key, for any version of the question."""
        cur = self.db.execute(
            f"SELECT question_id FROM answers WHERE {_OF_KEY.format(a='')} AND status='ok'",
            (*key.params(), key.clip))
        return {r[0] for r in cur}

    def stored_keys(self, key: RunKey) -> dict[str, dict[str, str]]:
        """question_id -> {content_key: status} of every row under the key."""
        out: dict[str, dict[str, str]] = {}
        cur = self.db.execute(
            f"SELECT question_id, content_key, status FROM answers WHERE {_OF_KEY.format(a='')}"
            " ORDER BY clip = ''", (*key.params(), key.clip))
        for qid, content, status in cur:  # a CLIP-keyed row comes first and wins
            out.setdefault(qid, {}).setdefault(content, status)
        return out

    def put_answer(self, key: RunKey, q: Question, prediction: str | None, scores,
                   content_key: str = "") -> None:
        """An answer to the question as asked (content_key); prediction None is an unparsed
        reply (answered, wrong, no guess). The question's current key becomes content_key."""
        self._write((_INSERT, (*key.row_params(q.dimension), q.question_id, content_key,
                               q.dimension, "ok", prediction, q.answer, json.dumps(scores),
                               None, None, None)),
                    (_CURRENT, (content_key, q.question_id)))

    def put_error(self, key: RunKey, q: Question, failure: Failure, content_key: str = "") -> None:
        self._write((_INSERT, (*key.row_params(q.dimension), q.question_id, content_key,
                               q.dimension, "error", None, q.answer, None, failure.status,
                               failure.message, failure.attempts)),
                    (_CURRENT, (content_key, q.question_id)))

    def rows(self, key: RunKey) -> list[Row]:
        """The selected questions in annotation order, with this key's answer to each
        question's current version if any.

        Should a question hold both a CLIP-free and a CLIP-keyed row, the CLIP-keyed one
        (the more specific) is taken.
        """
        cur = self.db.execute(
            "SELECT s.question_id, s.idx, s.dimension, s.answer, a.status, a.prediction,"
            " a.error_status, a.error_message, a.error_attempts, s.unsupported, s.content_key,"
            " s.choices FROM selection s LEFT JOIN answers a ON a.question_id = s.question_id"
            f" AND a.content_key = s.content_key AND {_OF_KEY.format(a='a.')}"
            " ORDER BY s.idx, a.clip = ''", (*key.params(), key.clip))
        out: list[Row] = []
        for (qid, idx, dim, answer, status, prediction, e_status, e_message, e_attempts,
             unsupported, content, choices) in cur:
            if out and out[-1].question_id == qid:
                continue
            error = Failure(e_status, e_message or "", e_attempts) if status == "error" else None
            out.append(Row(qid, idx, dim, answer, status, prediction, error, unsupported, content,
                           tuple(json.loads(choices)) if choices else None))
        return out

    def scores(self, key: RunKey, question_ids: Iterable[str]) -> dict[str, object]:
        """The stored evidence (option scores, L3 records) of these questions' current answers."""
        wanted = set(question_ids)
        cur = self.db.execute(
            "SELECT a.question_id, a.scores FROM answers a JOIN selection s"
            " ON s.question_id = a.question_id AND s.content_key = a.content_key"
            f" WHERE {_OF_KEY.format(a='a.')} AND a.status='ok' ORDER BY a.clip = ''",
            (*key.params(), key.clip))
        out: dict[str, object] = {}
        for qid, sc in cur:  # a CLIP-keyed row comes first and wins, as in rows()
            if qid in wanted and sc and qid not in out:
                out[qid] = json.loads(sc)
        return out

    def file_digests(self) -> list[tuple[str, int, int, int, str]]:
        """Every remembered media digest: (path, size, mtime_ns, inode, sha256)."""
        return self.db.execute("SELECT path, size, mtime_ns, inode, sha256 FROM file_digests"
                               ).fetchall()

    def put_file_digest(self, entry: tuple[str, int, int, int, str]) -> None:
        """Remember one digest (called from media threads: the writer must be running)."""
        self._write((_DIGEST, entry))
