"""L3 pieces without servers: seeds, file names, similarity, notes, the store key."""

import json

import pytest

from evaluator.data.dataset import Question
from evaluator.results import summary as report
from evaluator.results.store import RunKey, Store
from evaluator.run import l3
from evaluator.run.clip_client import cosine


def q(qid: str, dim: int) -> Question:
    return Question(index=int(qid.split("_")[1]) + 100 * dim, question_id=qid, question="x",
                    choices=("a", "b", "c", "d"), answer="A", dimension=dim, data_ids=("i",))


def test_seed_is_a_stable_function_of_the_question_id():
    assert l3.seed_for("25_0") == l3.seed_for("25_0")
    assert l3.seed_for("25_0") != l3.seed_for("25_1")
    assert all(0 <= l3.seed_for(str(i)) < 2**31 for i in range(100))
    # Pinned: a change of the seed policy changes every generated image.
    assert l3.seed_for("25_0") == 1422465852


def test_image_file_names_are_safe():
    assert l3.image_file_name("25_0") == "25_0.png"
    odd = l3.image_file_name("../a/b c")
    assert "/" not in odd and not odd.startswith(".") and odd.endswith(".png")
    assert l3.image_file_name("../a/b c") != l3.image_file_name("../a/b_c")


def test_cosine_normalises_and_checks_sizes():
    assert cosine([1.0, 0.0], [2.0, 0.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, 3.0]) == pytest.approx(0.0)
    assert cosine([0.6, 0.8], [0.6, 0.8]) == pytest.approx(1.0)
    assert cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
    with pytest.raises(ValueError):
        cosine([1.0], [1.0, 0.0])


def test_missing_note_names_what_is_missing():
    assert l3.missing_note(True, True, "m") is None
    assert "--clip" in l3.missing_note(False, True, "m")
    note = l3.missing_note(True, False, "m")
    assert "generate_image" in note and "m" in note and "--clip" not in note
    assert l3.missing_note(False, False, "m") == l3.NOTE_NEITHER


def test_prompt_text_drops_placeholders_that_do_not_match():
    assert l3.prompt_text("<img> then <img>", 2) == "<img> then <img>"
    assert l3.prompt_text("<img> then <img> next", 0) == "then next"


def test_clip_fingerprint_keys_l3_answers_only(tmp_path):
    store = Store(tmp_path)
    qs = [q("1_0", 1), q("25_0", 25), q("27_0", 27)]
    store.set_selection(qs, {})
    a = RunKey("model", "ppl", False, clip="clip-a")
    for x in qs:
        store.put_answer(a, x, "A", None)
    assert store.answered_ids(a) == {"1_0", "25_0", "27_0"}
    b = RunKey("model", "ppl", False, clip="clip-b")
    # Another CLIP model: L1/L2 answers stay, L3 answers must be made again.
    assert store.answered_ids(b) == {"1_0"}
    assert [r.status for r in store.rows(b)] == ["ok", None, None]
    store.put_answer(b, qs[1], "B", None)
    assert [r.prediction for r in store.rows(a)] == ["A", "A", "A"]
    assert [r.prediction for r in store.rows(b)] == ["A", "B", None]
    # No CLIP at all: only the non-L3 rows belong to the key.
    assert store.answered_ids(RunKey("model", "ppl", False)) == {"1_0"}
    store.close()


def test_store_from_before_l3_is_migrated(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / Store.FILE)
    db.executescript("""
        CREATE TABLE answers (fingerprint TEXT NOT NULL, method TEXT NOT NULL,
            include_eot INTEGER NOT NULL, question_id TEXT NOT NULL, dimension INTEGER NOT NULL,
            status TEXT NOT NULL, prediction TEXT, answer TEXT NOT NULL, scores TEXT, error TEXT,
            PRIMARY KEY (fingerprint, method, include_eot, question_id));
        INSERT INTO answers VALUES ('m', 'ppl', 0, '1_0', 1, 'ok', 'B', 'A', NULL, NULL);
        CREATE TABLE selection (question_id TEXT PRIMARY KEY, idx INTEGER NOT NULL,
            dimension INTEGER NOT NULL, answer TEXT NOT NULL, unsupported TEXT);
        INSERT INTO selection VALUES ('1_0', 0, 1, 'A', NULL);
    """)
    db.commit()
    db.close()
    store = Store(tmp_path)
    assert store.answered_ids(RunKey("m", "ppl", False, clip="c")) == {"1_0"}
    store.set_meta("run", {"benchmark": "SEED-Bench-2", "annotations": "f",
                           "model": {"fingerprint": "m", "name": "m", "backend": "b",
                                     "details": {}},
                           "method": "ppl", "include_end_of_turn": False, "filters": {},
                           "skipped_invalid": 0, "clip": None})
    typed = report.build_summary(store)
    assert typed.dimensions[1].n == 1 and typed.clip is None and typed.groups["L3"].status == "n/a"
    s = typed.to_dict()
    assert s["dimensions"]["1"]["total"] == 1 and s["clip"] is None
    assert s["averages"]["L3"] is None
    json.dumps(s)
    store.close()
