"""Presets as data: the reference interfaces they encode, and stores written before presets."""

from __future__ import annotations

import json
import sqlite3

import pytest

from evaluator.data import references
from evaluator.data.dataset import Question
from evaluator.results.runkey import RunKey
from evaluator.results.store import Store
from evaluator.run import methods, presets

Q = Question(0, "q1", "What is {it}?", ("cat", "dog", "a red car", "sky"), "B", 1, ("x",))


def test_published_rows_come_from_references_json_alone(tmp_path, monkeypatch):
    """`seedbench presets` and `compare --reference` read the same rows: every row names a
    shipped preset or none, each preset lists exactly the rows naming it, the rest are
    listed as unmatched; editing references.json changes what a preset reproduces."""
    rows = references.load()
    assert all(r["preset"] is None or r["preset"] in presets.PRESETS for r in rows.values())
    for name, p in presets.PRESETS.items():
        named = [n for n, r in rows.items() if r["preset"] == name]
        assert len(p.reproduces) == len(named) and p.record()["reproduces"] == p.reproduces
        for n, line in zip(named, p.reproduces, strict=True):
            assert line.endswith(f"--reference {n})") and rows[n]["model"] in line
    assert presets.PRESETS["llava-1.5"].reproduces[0].startswith(
        "LLaVA-1.5 (Vicuna-7B): L1 47.3, P2 30.8, L2 46.0 (SEED-Bench-2, PPL, task average")
    assert len(presets.PRESETS["seed1-instructblip"].reproduces) == 2
    assert [line.split(":")[0] for line in presets.unmatched_rows()] == ["Emu"]
    # One source: a new row naming a preset shows up under it, nothing else to edit.
    edited = tmp_path / "references.json"
    edited.write_text(json.dumps({"references": {**rows, "x": {
        **rows["seed2-emu"], "model": "Some-VLM", "preset": "qwen-vl-chat"}}}))
    monkeypatch.setattr(references, "FILE", edited)
    references.load.cache_clear()
    try:
        assert presets.PRESETS["qwen-vl-chat"].reproduces[0].startswith("Some-VLM: L1 42.5")
    finally:
        monkeypatch.undo()
        references.load.cache_clear()


def test_reference_interfaces_from_the_spec_table():
    p = presets.PRESETS
    assert (p["seed1-instructblip"].raw, p["seed1-instructblip"].reduction,
            p["seed1-instructblip"].end_token, p["seed1-instructblip"].images) == (True, "sum", True,
                                                                                   "all")
    assert (p["seed1-instructblip-hf"].raw, p["seed1-instructblip-hf"].reduction,
            p["seed1-instructblip-hf"].end_token) == (True, "mean", True)
    assert (p["llava-1.5"].raw, p["llava-1.5"].reduction, p["llava-1.5"].end_token,
            p["llava-1.5"].images) == (False, "mean", True, "first")
    assert (p["qwen-vl-chat"].raw, p["qwen-vl-chat"].reduction, p["qwen-vl-chat"].end_token,
            p["qwen-vl-chat"].images) == (True, "mean", False, "all")
    assert (p["chat-mean"].raw, p["chat-mean"].reduction, p["chat-mean"].end_token,
            p["chat-mean"].images) == (False, "mean", False, "all")
    assert presets.DEFAULT == "chat-mean" and "official" not in " ".join(p)


def test_raw_template_and_options():
    s = methods.score_prompt(Q, "ppl", presets.get("seed1-instructblip"))
    # braces in a question are text, not a format field
    assert s.text == "Question: What is {it}?\nAnswer:" and s.raw_prompt and s.include_end_of_turn
    assert s.options == (" cat", " dog", " a red car", " sky")
    chat = methods.score_prompt(Q, "ppl", presets.get("chat-mean"))
    assert chat.text == Q.question and not chat.raw_prompt and chat.options == Q.choices
    letter = methods.score_prompt(Q, "letter", presets.get("seed1-instructblip"))
    assert letter.text == "Question: " + methods.listed_prompt(Q) + "\nAnswer:"
    assert letter.options == (" A", " B", " C", " D")


def test_reductions_and_ties():
    scores = [(-2.0, 1), (-3.0, 1), (-4.5, 3), (-9.0, 1)]
    assert methods.pick(presets.get("chat-mean"), scores) == "C"          # mean -1.5
    assert methods.pick(presets.get("seed1-instructblip"), scores) == "A"  # sum -2
    assert methods.pick(presets.get("seed1-instructblip-hf"), [(-1.0, 2), (-0.5, 1)] * 2) == "A"


def test_image_placement():
    llava, allimg = presets.get("llava-1.5"), presets.get("chat-mean")
    assert llava.select_images("Which is brighter?", [1, 2, 3]) == [1]
    assert llava.select_images("Caption <img> then <img>", [1, 2]) == [1, 2]
    assert allimg.select_images("Which is brighter?", [1, 2, 3]) == [1, 2, 3]


def test_bad_presets_and_combinations_are_refused():
    with pytest.raises(ValueError, match="unknown preset 'x'"):
        presets.get("x")
    with pytest.raises(ValueError, match="reduction"):
        presets.Preset("p", "i", presets.CHAT, "median", False, "all")
    with pytest.raises(ValueError, match="needs {question}"):
        presets.Preset("p", "i", "Q:", "mean", False, "all")
    assert "raw prompt" in methods.refusal("generate", presets.get("qwen-vl-chat"))
    assert methods.refusal("generate", presets.get("llava-1.5")) is None
    internlm = presets.get("internlm-xcomposer")
    for method in ("ppl", "generate"):
        assert "--method letter only" in methods.refusal(method, internlm)
    assert methods.refusal("letter", internlm) is None


def test_internlm_xcomposer_letters_carry_their_full_stop():
    p = presets.get("internlm-xcomposer")
    prompt = methods.score_prompt(Q, "letter", p)
    assert prompt.options == ("A.", "B.", "C.", "D.")
    assert prompt.text == methods.listed_prompt(Q) and not prompt.raw_prompt
    assert not prompt.include_end_of_turn and p.reduction == "mean"
    assert methods.score_prompt(Q, "letter", presets.get("chat-mean")).options == tuple("ABCD")
    assert methods.pick(p, [(-3.0, 2), (-1.0, 2), (-5.0, 2), (-4.0, 2)]) == "B"


def test_store_written_before_presets_is_migrated(tmp_path):
    """Old rows keep their answers: the default method's become chat-mean; variants that no
    preset reproduces (ppl-sum, end-of-turn) are kept apart, matched by no key."""
    with sqlite3.connect(tmp_path / Store.FILE) as db:
        db.executescript("""
            CREATE TABLE answers (fingerprint TEXT NOT NULL, method TEXT NOT NULL,
                include_eot INTEGER NOT NULL, clip TEXT NOT NULL DEFAULT '',
                question_id TEXT NOT NULL, dimension INTEGER NOT NULL, status TEXT NOT NULL,
                prediction TEXT, answer TEXT NOT NULL, scores TEXT, error TEXT,
                PRIMARY KEY (fingerprint, method, include_eot, clip, question_id));
            INSERT INTO answers VALUES ('m', 'ppl', 0, '', '1_0', 1, 'ok', 'A', 'A', '[]', NULL);
            INSERT INTO answers VALUES ('m', 'ppl-sum', 0, '', '1_0', 1, 'ok', 'B', 'A', '[]', NULL);
            INSERT INTO answers VALUES ('m', 'ppl', 1, '', '1_1', 1, 'ok', 'C', 'A', '[]', NULL);
        """)
    store = Store(tmp_path)
    rows = store.db.execute("SELECT method, preset, include_eot, question_id FROM answers "
                            "ORDER BY method, include_eot").fetchall()
    assert rows == [("ppl", "chat-mean", 0, "1_0"), ("ppl", "", 1, "1_1"), ("ppl-sum", "", 0, "1_0")]
    assert store.answered_ids(RunKey("m", "ppl", False)) == {"1_0"}
    assert store.answered_ids(RunKey("m", "ppl", True, preset="llava-1.5")) == set()
    store.close()
    # Reopening changes nothing.
    store = Store(tmp_path)
    assert store.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 3
    store.close()
