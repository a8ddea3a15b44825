"""Errors as typed values: status, message and attempts in store columns, grouped by reason
with ids and numbers masked, and old stores' error texts parsed once at migration."""

import json
import sqlite3

from evaluator.data import benchmarks as B
from evaluator.data.dataset import Question
from evaluator.results import failures
from evaluator.results import summary as report
from evaluator.results.failures import ErroredQuestion, Failure
from evaluator.results.runkey import RunKey
from evaluator.results.store import Store

KEY = RunKey("fp", "ppl", False)


def q(qid: str, dim: int = 1) -> Question:
    return Question(index=int(qid.split("_")[-1]) if "_" in qid else int(qid), question_id=qid,
                    question="x", choices=("a", "b", "c", "d"), answer="A", dimension=dim,
                    data_ids=("i",))


def test_messages_differing_in_ids_and_numbers_are_one_reason_with_examples():
    errs = [ErroredQuestion("123", 1, Failure("QUESTION", "question 123: 4 scores for 3 options")),
            ErroredQuestion("9", 2, Failure("QUESTION", "question 9: 5 scores for 2 options")),
            ErroredQuestion("v17", 2, Failure("QUESTION", "question v17: 4 scores for 3 options")),
            ErroredQuestion("40", 3, Failure("UNAVAILABLE", "connection refused", 5))]
    (scores, down) = failures.group(errs)
    assert scores.as_dict() == {
        "status": "QUESTION", "reason": "question {id}: {n} scores for {n} options", "count": 3,
        "examples": ["123", "9", "v17"],
        "messages": ["question 123: 4 scores for 3 options", "question 9: 5 scores for 2 options"]}
    assert (down.reason, down.count, down.examples) == ("connection refused", 1, ["40"])
    # Sizes, paths and decimals are numbers; digits inside a word are part of the word.
    assert failures.reason_of("q1", "image /data/17.png is 640x480, 1.5 MB over sha256 L3") == \
        "image /data/{n}.png is {n}x{n}, {n} MB over sha256 L3"


def test_errors_live_in_columns(tmp_path):
    store = Store(tmp_path)
    try:
        store.set_selection([q("1_0"), q("1_1")], {})
        store.put_error(KEY, q("1_0"), Failure("DEADLINE_EXCEEDED", "slow: 2.5 s", 3), "k0")
        store.put_error(KEY, q("1_1"), Failure("MEDIA", "data_id: image file x.png is missing"))
        cols = [r[1] for r in store.db.execute("PRAGMA table_info(answers)")]
        assert "error" not in cols
        got = store.db.execute("SELECT question_id, content_key, error_status, error_message,"
                               " error_attempts FROM answers ORDER BY question_id").fetchall()
        assert got == [("1_0", "k0", "DEADLINE_EXCEEDED", "slow: 2.5 s", 3),
                       ("1_1", "", "MEDIA", "data_id: image file x.png is missing", None)]
        assert [r.error for r in store.rows(KEY)] == [
            Failure("DEADLINE_EXCEEDED", "slow: 2.5 s", 3),
            Failure("MEDIA", "data_id: image file x.png is missing")]
    finally:
        store.close()


OLD_STORE = """
CREATE TABLE answers (
    fingerprint TEXT NOT NULL, method TEXT NOT NULL, preset TEXT NOT NULL,
    include_eot INTEGER NOT NULL, clip TEXT NOT NULL DEFAULT '', question_id TEXT NOT NULL,
    dimension INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    prediction TEXT, answer TEXT NOT NULL, scores TEXT, error TEXT,
    PRIMARY KEY (fingerprint, method, preset, include_eot, clip, question_id));
CREATE TABLE selection (question_id TEXT PRIMARY KEY, idx INTEGER NOT NULL,
    dimension INTEGER NOT NULL, answer TEXT NOT NULL, unsupported TEXT);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO answers VALUES ('fp', 'ppl', 'chat-mean', 0, '', '1_0', 1, 'ok', 'A', 'A',
    '[{"logprob_sum": -1.0, "num_tokens": 1}]', NULL);
INSERT INTO answers VALUES ('fp', 'ppl', 'chat-mean', 0, '', '1_1', 1, 'error', NULL, 'A', NULL,
    'RESOURCE_EXHAUSTED: [1_1] prompt.images: 2 images, this model accepts at most 1 (after 1 attempt(s))');
INSERT INTO answers VALUES ('fp', 'ppl', 'chat-mean', 0, '', '1_2', 1, 'error', NULL, 'A', NULL,
    'MEDIA: data_id: image file /m/3.jpg is missing');
INSERT INTO answers VALUES ('fp', 'ppl', 'chat-mean', 0, '', '2_0', 2, 'error', NULL, 'A', NULL,
    'a text from before statuses');
INSERT INTO selection VALUES ('1_0', 0, 1, 'A', NULL);
INSERT INTO selection VALUES ('1_1', 1, 1, 'A', NULL);
INSERT INTO selection VALUES ('1_2', 2, 1, 'A', NULL);
INSERT INTO selection VALUES ('2_0', 3, 2, 'A', NULL);
"""


def test_an_old_text_error_store_is_migrated_once(tmp_path):
    with sqlite3.connect(tmp_path / Store.FILE) as db:
        db.executescript(OLD_STORE)
        db.execute("INSERT INTO meta VALUES ('run', ?)", (json.dumps({
            "benchmark": B.SEED_BENCH_1.name, "annotations": "f.json", "key": KEY.to_dict(),
            "model": {"name": "m", "fingerprint": "fp", "backend": "b", "details": {}},
            "method": "ppl", "include_end_of_turn": False, "filters": {},
            "skipped_invalid": 0, "clip": None}),))
    db.close()
    store = Store(tmp_path)
    try:
        got = store.db.execute("SELECT question_id, content_key, status, error_status,"
                               " error_message, error_attempts FROM answers ORDER BY question_id"
                               ).fetchall()
        assert got == [
            ("1_0", "", "ok", None, None, None),
            ("1_1", "", "error", "RESOURCE_EXHAUSTED",
             "[1_1] prompt.images: 2 images, this model accepts at most 1", 1),
            ("1_2", "", "error", "MEDIA", "data_id: image file /m/3.jpg is missing", None),
            ("2_0", "", "error", "ERROR", "a text from before statuses", None)]
        # The old run still reports as it was, its answer and errors included.
        s = report.write_outputs(store, tmp_path).to_dict()
        assert s["counts"]["answered"] == 1 and s["counts"]["errors"] == 3
        assert [(g["status"], g["reason"]) for g in s["error_reasons"]] == [
            ("RESOURCE_EXHAUSTED", "[{id}] prompt.images: {n} images, this model accepts at most {n}"),
            ("MEDIA", "data_id: image file /m/{n}.jpg is missing"),
            ("ERROR", "a text from before statuses")]
        lines = [json.loads(x) for x in (tmp_path / "errors.jsonl").read_text().splitlines()]
        assert lines[0] == {"question_id": "1_1", "dimension": 1, "status": "RESOURCE_EXHAUSTED",
                            "message": "[1_1] prompt.images: 2 images, this model accepts at most 1",
                            "attempts": 1}
    finally:
        store.close()
    # Reopening finds today's schema: nothing is parsed or rebuilt again.
    with sqlite3.connect(tmp_path / Store.FILE) as db:
        db.execute("UPDATE answers SET error_message = 'kept' WHERE question_id = '2_0'")
    db.close()
    store = Store(tmp_path)
    try:
        assert store.db.execute("SELECT error_message FROM answers WHERE question_id = '2_0'"
                                ).fetchone() == ("kept",)
    finally:
        store.close()
