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
from protos import seedbench_pb2 as pb

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
    llava = p["llava-1.5"]
    assert (llava.raw, llava.reduction, llava.images, llava.window, llava.image_text,
            llava.tokenization, llava.option_prefix, llava.option_suffix) == (
        True, "mean", "first", "last-option-length", "model-token", "split-at-images", " ", "</s>")
    assert llava.preprocessing == presets.ImageRecipe(
        "squash", 0, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
    assert (p["qwen-vl-chat"].raw, p["qwen-vl-chat"].reduction, p["qwen-vl-chat"].end_token,
            p["qwen-vl-chat"].images, p["qwen-vl-chat"].window) == (
        True, "mean", False, "all", "length-difference")
    assert (p["chat-mean"].raw, p["chat-mean"].reduction, p["chat-mean"].end_token,
            p["chat-mean"].images) == (False, "mean", False, "all")
    assert presets.DEFAULT == "chat-mean" and "official" not in " ".join(p)
    # Which presets are reference interfaces (exact), adaptations, or the default.
    assert {n: x.kind for n, x in p.items()} == {
        "chat-mean": "default", "llava-1.5": "reference", "seed1-instructblip": "adaptation",
        "seed1-instructblip-hf": "adaptation", "qwen-vl-chat": "adaptation",
        "internlm-xcomposer": "adaptation"}


def test_llava_1_5_request_is_the_llava_v1_conversation():
    """The text and fields the llava-1.5 preset sends, per image placement: the system line,
    USER/ASSISTANT, "<img>\\n" before a question without <img> (first image only), inline <img>
    otherwise; the bare option (the window counts it), " " before it and "</s>" after."""
    system = ("A chat between a curious human and an artificial intelligence assistant. The "
              "assistant gives helpful, detailed, and polite answers to the human's questions.")
    llava = presets.get("llava-1.5")
    imgs = [pb.Image(data=b"1"), pb.Image(data=b"2")]
    one = methods.score_request(Q, "ppl", llava, imgs)
    assert one.prompt.text == f"{system} USER: <img>\nWhat is {{it}}? ASSISTANT:"
    assert [im.data for im in one.prompt.images] == [b"1"]
    assert list(one.options) == list(Q.choices) and one.raw_prompt
    assert (one.option_prefix, one.option_suffix) == (" ", "</s>")
    assert one.scoring_window == pb.SCORING_WINDOW_LAST_OPTION_LENGTH
    assert one.image_text == pb.IMAGE_TEXT_MODEL_TOKEN
    assert one.tokenization == pb.PROMPT_TOKENIZATION_SPLIT_AT_IMAGES
    assert not one.include_end_of_turn
    prep = one.image_preprocessing
    assert prep.mode == pb.ImagePreprocessing.MODE_SQUASH and prep.size == 0
    assert list(prep.mean) == [0.48145466, 0.4578275, 0.40821073]
    assert list(prep.std) == [0.26862954, 0.26130258, 0.27577711]
    inter = Question(0, "q2", "A <img> then <img>: which?", Q.choices, "A", 23, ("a", "b"))
    both = methods.score_request(inter, "ppl", llava, imgs)
    assert both.prompt.text == f"{system} USER: A <img> then <img>: which? ASSISTANT:"
    assert len(both.prompt.images) == 2
    # The default sends none of the recipe fields: any server reads it as before.
    chat = methods.score_request(Q, "ppl", presets.get("chat-mean"), imgs)
    assert chat == pb.ScoreRequest(request_id="q1", prompt=pb.Prompt(text=Q.question, images=imgs),
                                   options=list(Q.choices))


def test_qwen_vl_chat_writes_each_picture_and_counts_the_length_difference():
    qwen = presets.get("qwen-vl-chat")
    imgs = [pb.Image(data=b"1"), pb.Image(data=b"2")]
    req = methods.score_request(Q, "ppl", qwen, imgs)
    assert req.prompt.text == "Picture 1: <img>\nPicture 2: <img>\nWhat is {it}?"
    assert list(req.options) == list(Q.choices) and req.raw_prompt
    assert req.scoring_window == pb.SCORING_WINDOW_LENGTH_DIFFERENCE
    assert not req.HasField("image_preprocessing")
    inter = Question(0, "q2", "A <img> then <img>: which?", Q.choices, "A", 23, ("a", "b"))
    assert methods.score_request(inter, "ppl", qwen, imgs).prompt.text == (
        "A Picture 1: <img>\n then Picture 2: <img>\n: which?")


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
    assert "--method ppl only" in methods.refusal("generate", presets.get("llava-1.5"))
    assert "--method ppl only" in methods.refusal("letter", presets.get("llava-1.5"))
    with pytest.raises(ValueError, match="raw prompts only"):
        presets.Preset("p", "i", presets.CHAT, "mean", False, "all", window="last-option-length")
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
