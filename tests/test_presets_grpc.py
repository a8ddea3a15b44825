"""Presets and the generate method end to end: the seedbench CLI against real model servers.

The scripted backend logs every request it receives, so the tests read exactly
what each preset sent (text, options, flags, image count) and give the generate
method exact replies for the parser. The tiny hf model is the real path: its
stored scores are compared with direct Score calls.
"""

from __future__ import annotations

import json

import grpc
import pytest
from rich.console import Console

from evaluator import cli, load_run
from evaluator.data.dataset import Question
from evaluator.reports import terminal
from evaluator.run import methods, presets
from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from serving.answer_parser import parse_answer
from tests.evaluator_runs import run
from tests.evaluator_runs import run_argv as run_args
from tests.images import png, sha
from tests.procs import model_server
from tests.tiny_models import tiny_model

QUIET = ["--log-level", "WARNING"]
LLAVA_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. The "
                "assistant gives helpful, detailed, and polite answers to the human's questions.")
SRC = "SEED-Bench v2"
CHOICES = {"single": ("red", "a green field", "blue sky", "none of them"),
           "multi": ("the first", "the second", "both", "neither"),
           "inter": ("a box", "a circle", "two boxes", "nothing")}
QUESTIONS = {"single": "What is the main colour of this picture?",
             "multi": "Which of the two images is brighter?",
             "inter": "Caption: <img> a box. Next: <img> what is it?"}


def _question(qid, dim, level, subpart, data_type, text, data_id, answer):
    a, b, c, d = CHOICES[qid]
    return {"question_id": qid, "question_type_id": dim, "question": text, "choice_a": a,
            "choice_b": b, "choice_c": c, "choice_d": d, "answer": answer, "data_id": data_id,
            "data_source": SRC, "level": level, "version": "v2", "subpart": subpart,
            "data_type": data_type}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three questions: one image; two images without <img>; two images at <img> markers."""
    root = tmp_path_factory.mktemp("presets")
    (root / "media").mkdir()
    for k in range(5):
        (root / "media" / f"{k}.png").write_bytes(png(k, (48 + 8 * k, 40)))
    qs = [
        _question("single", 1, "L1", "Single-Image & Text Comprehension", "Single Image",
                  QUESTIONS["single"], "0.png", "A"),
        _question("multi", 17, "L1", "Multiple-Images & Text Comprehension", "Multiple Images",
                  QUESTIONS["multi"], ["1.png", "2.png"], "B"),
        _question("inter", 23, "L2", "Interleaved Image & Text Comprehension", "Interleaved Image",
                  QUESTIONS["inter"], ["3.png", "4.png"], "C"),
    ]
    ann = root / "ann.json"
    ann.write_text(json.dumps({"questions": qs}))
    return ann, {SRC: root / "media"}, root


def calls(log):
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def summary(out):
    return json.loads((out / "summary.json").read_text())


def answers(out):
    """The last run's answers and their stored evidence, read through the API."""
    return {q.question_id: {"prediction": q.prediction, "scores": q.evidence}
            for q in load_run(out).questions(evidence=True) if q.status == "ok"}


def question(qid):
    return Question(0, qid, QUESTIONS[qid], CHOICES[qid], "A", 1, ())


# -- what each preset sends (scripted backend) ------------------------------------------------


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    d = tmp_path_factory.mktemp("scripted")
    script = {"name": "scripted-presets", "generate_image": False, "score": {}, "log": "calls.jsonl",
              "generate": {"main colour": "**B**", "brighter": "I'm sorry, I cannot tell.",
                           "what is it": "Two boxes."}}
    (d / "script.json").write_text(json.dumps(script))
    with model_server(["--backend", "scripted", "--model", str(d / "script.json"), *QUIET]) as (t, _):
        yield t, d / "calls.jsonl"


@pytest.mark.parametrize("name", [n for n, p in presets.PRESETS.items()
                                  if not p.methods or "ppl" in p.methods])
def test_each_preset_sends_its_interface(data, scripted, tmp_path, name):
    ann, roots, _ = data
    target, log = scripted
    before = len(calls(log))
    run(ann, roots, target, tmp_path, preset=name)
    sent = {c["request_id"]: c for c in calls(log)[before:] if c["call"] == "Score"}
    assert set(sent) == {"single", "multi", "inter"}
    p = presets.get(name)
    for qid, c in sent.items():
        q = QUESTIONS[qid]
        pictures = {"single": "Picture 1: <img>\n", "multi": "Picture 1: <img>\nPicture 2: <img>\n",
                    "inter": ""}[qid]
        text = {"seed1-instructblip": f"Question: {q}\nAnswer:",
                "seed1-instructblip-hf": f"Question: {q}\nAnswer:",
                "llava-1.5": f"{LLAVA_SYSTEM} USER: {'' if qid == 'inter' else '<img>' + chr(10)}{q}"
                             " ASSISTANT:",
                "qwen-vl-chat": pictures + q.replace("<img>", "Picture 1: <img>\n", 1).replace(
                    "<img> what", "Picture 2: <img>\n what")}
        assert c["text"] == text.get(name, q), (name, qid)
        assert c["raw_prompt"] is (name in ("seed1-instructblip", "seed1-instructblip-hf",
                                             "qwen-vl-chat", "llava-1.5"))
        assert c["include_end_of_turn"] is (name in ("seed1-instructblip", "seed1-instructblip-hf"))
        prefix = " " if name.startswith("seed1-") else ""
        assert c["options"] == [prefix + o for o in CHOICES[qid]]
        assert c["raw_prompt"] is p.raw and c["include_end_of_turn"] is p.end_token
        recipe = {"llava-1.5": {"scoring_window": "SCORING_WINDOW_LAST_OPTION_LENGTH",
                                "image_text": "IMAGE_TEXT_MODEL_TOKEN",
                                "tokenization": "PROMPT_TOKENIZATION_SPLIT_AT_IMAGES",
                                "option_prefix": " ", "option_suffix": "</s>",
                                "image_preprocessing": "MODE_SQUASH", "image_size": 0,
                                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                                "image_std": [0.26862954, 0.26130258, 0.27577711]},
                  "qwen-vl-chat": {"scoring_window": "SCORING_WINDOW_LENGTH_DIFFERENCE",
                                   "image_text": "IMAGE_TEXT_TEMPLATE_MARKER",
                                   "tokenization": "PROMPT_TOKENIZATION_WHOLE",
                                   "option_prefix": "", "option_suffix": "",
                                   "image_preprocessing": "MODE_MODEL_PROCESSOR"}}
        got = {k: c[k] for k in c if k not in ("call", "request_id", "text", "images", "options",
                                                 "image_sha256", "raw_prompt",
                                                 "include_end_of_turn")}
        assert got == recipe.get(name, {"image_preprocessing": "MODE_MODEL_PROCESSOR"}), name
    # One-image placement: LLaVA-1.5 sends only the first image of a question without
    # <img>; where <img> marks the images, all of them go.
    one = name == "llava-1.5"
    assert [sent[q]["images"] for q in ("single", "multi", "inter")] == [1, 1 if one else 2, 2]
    s = summary(tmp_path)
    assert s["preset"] == p.record() and s["method"] == "ppl"
    assert s["include_end_of_turn"] is p.end_token
    assert json.loads((tmp_path / "run.json").read_text())["preset"] == name
    console = Console(record=True, width=200)
    terminal.print_report(load_run(tmp_path).summary, console)
    assert f"preset {name}" in " ".join(console.export_text().split())  # titles may wrap


def test_internlm_xcomposer_scores_listed_letters_with_their_full_stop(data, scripted, tmp_path,
                                                                     capsys):
    """The InternLM-XComposer interface: options listed in the prompt, each letter scored with
    its full stop ("A."), mean, the model's chat template; it used the letter method only,
    so any other method is refused before a question is sent."""
    ann, roots, _ = data
    target, log = scripted
    before = len(calls(log))
    assert cli.main(run_args(ann, roots, target, tmp_path / "ppl",
                             "--preset", "internlm-xcomposer")) == 2
    assert "--method letter" in " ".join(capsys.readouterr().err.split())
    assert len(calls(log)) == before
    run(ann, roots, target, tmp_path / "letter", method="letter", preset="internlm-xcomposer")
    sent = {c["request_id"]: c for c in calls(log)[before:] if c["call"] == "Score"}
    assert set(sent) == {"single", "multi", "inter"}
    for qid, c in sent.items():
        assert c["options"] == ["A.", "B.", "C.", "D."][:len(CHOICES[qid])]
        assert c["text"] == methods.listed_prompt(question(qid))
        assert c["raw_prompt"] is False and c["include_end_of_turn"] is False
    s = summary(tmp_path / "letter")
    assert s["method"] == "letter" and s["preset"]["name"] == "internlm-xcomposer"


def test_preset_is_part_of_the_results_key(data, scripted, tmp_path):
    ann, roots, _ = data
    target, log = scripted

    def scored():
        return [c for c in calls(log) if c["call"] == "Score"]

    n0 = len(scored())
    run(ann, roots, target, tmp_path, preset="chat-mean")
    assert run(ann, roots, target, tmp_path, preset="chat-mean").run.todo == 0
    n1 = len(scored())
    assert n1 - n0 == 3  # the rerun with the same preset resumed: nothing asked again
    run(ann, roots, target, tmp_path, preset="llava-1.5")
    assert len(scored()) - n1 == 3  # another preset: its own answers
    assert summary(tmp_path)["preset"]["name"] == "llava-1.5"
    # ... kept beside the first preset's, which a rerun of that preset finds again.
    assert run(ann, roots, target, tmp_path, preset="chat-mean").run.todo == 0
    assert len(scored()) - n1 == 3


# -- generate with exact replies (scripted backend) -------------------------------------------


def test_generate_parses_replies_and_keeps_unparsed_ones_unguessed(data, scripted, tmp_path):
    ann, roots, _ = data
    target, log = scripted
    before = len(calls(log))
    run(ann, roots, target, tmp_path, method="generate")
    gen = {c["request_id"]: c for c in calls(log)[before:] if c["call"] == "Generate"}
    assert set(gen) == {"single", "multi", "inter"}
    for qid, c in gen.items():
        # the letter method's listing, sent as is; greedy, seeded, short
        assert c["text"] == methods.listed_prompt(question(qid))
        assert c["text"] == methods.score_prompt(question(qid), "letter",
                                                 presets.get("chat-mean")).text
        assert (c["max_new_tokens"], c["temperature"], c["seed"]) == (
            methods.GENERATE_MAX_NEW_TOKENS, 0.0, methods.GENERATE_SEED)
    rows = answers(tmp_path)
    assert rows["single"]["prediction"] == "B"            # "**B**"; the answer is A: wrong
    assert rows["inter"]["prediction"] == "C"             # "Two boxes." is option C's text: right
    assert rows["multi"]["prediction"] is None            # a refusal: unparsed
    assert rows["multi"]["scores"] == {"text": "I'm sorry, I cannot tell.", "parse": "refusal"}
    assert rows["single"]["scores"]["text"] == "**B**"
    s = summary(tmp_path)
    assert s["method"] == "generate"
    dims = s["dimensions"]
    assert (dims["1"]["total"], dims["1"]["correct"], dims["1"]["unparsed"]) == (1, 0, 0)
    assert (dims["17"]["total"], dims["17"]["correct"], dims["17"]["unparsed"]) == (1, 0, 1)
    assert dims["17"]["accuracy"] == 0.0  # answered and wrong
    assert (dims["23"]["total"], dims["23"]["correct"], dims["23"]["unparsed"]) == (1, 1, 0)
    assert s["counts"]["unparsed"] == 1 and s["counts"]["answered"] == 3
    sub = [json.loads(x) for x in (tmp_path / "submission.jsonl").read_text().splitlines()]
    assert {x["question_id"]: x["prediction"] for x in sub} == {"single": "B", "inter": "C"}
    console = Console(record=True, width=200)
    terminal.print_report(load_run(tmp_path).summary, console)
    text = " ".join(console.export_text().split())
    assert "unparsed" in text and "method generate" in text
    # A rerun asks nothing again: an unparsed reply is an answer, not an error.
    n = len(calls(log))
    assert run(ann, roots, target, tmp_path, method="generate").run.todo == 0
    assert len(calls(log)) == n


def test_generate_sends_every_image_and_reference_presets_refuse_it(data, scripted, tmp_path,
                                                                    capsys):
    """Generate under the default sends all images; a reference preset whose interface
    ranked options (llava-1.5: PPL) refuses --method generate before any question."""
    ann, roots, _ = data
    target, log = scripted
    before = len(calls(log))
    run(ann, roots, target, tmp_path / "chat", method="generate")
    assert {c["request_id"]: c["images"] for c in calls(log)[before:]
            if c["call"] == "Generate"} == {"single": 1, "multi": 2, "inter": 2}
    before = len(calls(log))
    assert cli.main(run_args(ann, roots, target, tmp_path / "llava", "--method", "generate",
                             "--preset", "llava-1.5")) == 2
    assert "--method ppl only" in " ".join(capsys.readouterr().err.split())
    assert len(calls(log)) == before


def test_generate_is_refused_before_any_question(data, tmp_path, capsys):
    ann, roots, root = data
    script = root / "score_only.json"
    script.write_text(json.dumps({"name": "score-only", "generate_image": False,
                                  "log": "score_only.jsonl"}))
    with model_server(["--backend", "scripted", "--model", str(script), *QUIET]) as (target, _):
        assert cli.main(run_args(ann, roots, target, tmp_path / "a", "--method", "generate")) == 2
        assert "does not advertise generate" in " ".join(capsys.readouterr().err.split())
        assert cli.main(run_args(ann, roots, target, tmp_path / "b", "--method", "generate",
                                 "--preset", "qwen-vl-chat")) == 2
        assert "raw prompt" in " ".join(capsys.readouterr().err.split())
    assert calls(root / "score_only.jsonl") == []


def test_presets_command_lists_every_preset_and_its_rows(capsys):
    assert cli.main(["presets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert list(listed) == list(presets.PRESETS)
    assert "LLaVA-1.5 (Vicuna-7B): L1 47.3, P2 30.8, L2 46.0" in listed["llava-1.5"]["reproduces"][0]
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in presets.PRESETS:
        assert name in out
    assert "Emu" in out and "official" not in out.lower()


# -- the real path: a tiny hf model -----------------------------------------------------------


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    path = tiny_model("llava", tmp_path_factory.getbasetemp())
    with model_server(["--backend", "hf", "--model", str(path), *QUIET]) as (target, _):
        with grpc.insecure_channel(target) as ch:
            yield target, pb_grpc.ModelServiceStub(ch)


def _images(root, qid):
    return {"single": [0], "multi": [1, 2], "inter": [3, 4]}[qid]


def direct(stub, root, qid, preset):
    """The server's scores for exactly the request the preset builds (its recipe included)."""
    data = [(root / "media" / f"{k}.png").read_bytes() for k in _images(root, qid)]
    req = methods.score_request(question(qid), "ppl", presets.get(preset),
                                [pb.Image(data=d, sha256=sha(d)) for d in data])
    return [(s.logprob_sum, s.num_tokens) for s in stub.Score(req, timeout=60).scores]


def test_hf_presets_change_the_request_and_the_reduction_as_specified(data, hf, tmp_path):
    ann, roots, root = data
    target, stub = hf
    rows = {}
    for name in ("seed1-instructblip", "seed1-instructblip-hf", "chat-mean", "llava-1.5"):
        run(ann, roots, target, tmp_path, preset=name)
        rows.update({(q, name): r for q, r in answers(tmp_path).items()})

    def scores(qid, preset):
        return [(x["logprob_sum"], x["num_tokens"]) for x in rows[qid, preset]["scores"]]

    def sums(pairs):  # pytest.approx compares flat sequences
        return [s for s, _ in pairs]

    for qid in ("single", "multi", "inter"):
        # Stored scores are the server's for exactly the preset's request.
        for name in ("seed1-instructblip", "chat-mean", "llava-1.5"):
            got, want = scores(qid, name), direct(stub, root, qid, name)
            assert [n for _, n in got] == [n for _, n in want]
            assert sums(got) == pytest.approx(sums(want), abs=1e-4)
        # The two InstructBLIP presets send the same request: only the reduction differs.
        total, mean = scores(qid, "seed1-instructblip"), scores(qid, "seed1-instructblip-hf")
        assert sums(total) == pytest.approx(sums(mean), abs=1e-4)
        assert [n for _, n in total] == [n for _, n in mean]
        letters = "ABCD"
        assert rows[qid, "seed1-instructblip"]["prediction"] == letters[
            max(range(4), key=lambda i: (total[i][0], -i))]
        assert rows[qid, "seed1-instructblip-hf"]["prediction"] == letters[
            max(range(4), key=lambda i: (mean[i][0] / mean[i][1], -i))]
        for name in ("chat-mean", "llava-1.5"):
            cm = scores(qid, name)
            assert rows[qid, name]["prediction"] == letters[
                max(range(4), key=lambda i: (cm[i][0] / cm[i][1], -i))]
    # llava-1.5 scores its own conversation, not the model's chat template: other numbers.
    assert sums(scores("single", "llava-1.5")) != pytest.approx(
        sums(scores("single", "chat-mean")), abs=1e-3)


def test_hf_generate_end_to_end(data, hf, tmp_path):
    ann, roots, root = data
    target, stub = hf
    run(ann, roots, target, tmp_path, method="generate")
    rows = answers(tmp_path)
    assert set(rows) == {"single", "multi", "inter"}
    s = summary(tmp_path)
    unparsed = 0
    for qid, r in rows.items():
        text = r["scores"]["text"]
        # The stored text is the model's greedy reply to the listed prompt (deterministic).
        data_ = [(root / "media" / f"{k}.png").read_bytes() for k in _images(root, qid)]
        reply = stub.Generate(pb.GenerateRequest(
            request_id=qid, prompt=pb.Prompt(text=methods.listed_prompt(question(qid)),
                                             images=[pb.Image(data=d, sha256=sha(d)) for d in data_]),
            max_new_tokens=methods.GENERATE_MAX_NEW_TOKENS, seed=methods.GENERATE_SEED), timeout=60)
        assert reply.text == text
        parsed = parse_answer(text, CHOICES[qid])
        assert r["prediction"] == parsed.letter and r["scores"]["parse"] == parsed.reason
        unparsed += parsed.letter is None
    assert s["counts"]["unparsed"] == unparsed
    assert sum(d["unparsed"] for d in s["dimensions"].values()) == unparsed
    sub = (tmp_path / "submission.jsonl").read_text().splitlines()
    assert len(sub) == 3 - unparsed


# -- remote backends: generate through a chat API, raw prompts --------------------------------


def _remote(backend, api, *settings):
    args = ["--backend", backend, "--model", "fake-model", "--max-wait-ms", "1", *QUIET,
            "--backend-arg", f"base_url={api.url}", "--backend-arg", "max_retries=1",
            "--backend-arg", "timeout_s=10"]
    for s in settings:
        args += ["--backend-arg", s]
    return model_server(args, timeout=60)


def test_generate_through_a_remote_chat_api(data, api, tmp_path, monkeypatch):
    ann, roots, _ = data
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    api.reset()
    replies = ["Answer: A", "I can't say.", "(C) two boxes"]  # file order, one call at a time
    api.script = [(200, {"choices": [{"message": {"role": "assistant", "content": r}}]}, {})
                       for r in replies]
    with _remote("openai", api, "capabilities=score,generate") as (target, _):
        run(ann, roots, target, tmp_path, method="generate", in_flight=1)
    sent = api.calls("/v1/chat/completions")
    assert [b["temperature"] for b in sent] == [0.0] * 3
    assert all(b["max_tokens"] == methods.GENERATE_MAX_NEW_TOKENS for b in sent)
    rows = answers(tmp_path)
    assert {q: r["prediction"] for q, r in rows.items()} == {"single": "A", "multi": None,
                                                             "inter": "C"}
    assert rows["multi"]["scores"]["text"] == "I can't say."
    s = summary(tmp_path)
    assert s["counts"]["unparsed"] == 1 and s["dimensions"]["1"]["correct"] == 1
    assert s["dimensions"]["23"]["correct"] == 1 and s["dimensions"]["17"]["unparsed"] == 1


def test_remote_chat_refuses_raw_prompt_and_echo_sends_it_as_is(api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    api.reset()
    raw = pb.ScoreRequest(request_id="q1", prompt=pb.Prompt(text="Question: Is it?\nAnswer:"),
                          options=[" yes", " no"], raw_prompt=True)
    with _remote("openai", api, "score_mode=chat-letter") as (target, _):
        with grpc.insecure_channel(target) as ch:
            with pytest.raises(grpc.RpcError) as exc:
                pb_grpc.ModelServiceStub(ch).Score(raw, timeout=30)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_prompt" in exc.value.details()
    assert api.calls("/v1/chat/completions") == []
    with _remote("vllm", api) as (target, _):
        with grpc.insecure_channel(target) as ch:
            scores = pb_grpc.ModelServiceStub(ch).Score(raw, timeout=30).scores
    prompts = sorted(b["prompt"] for b in api.calls("/v1/completions"))
    assert prompts == ["Question: Is it?\nAnswer: no", "Question: Is it?\nAnswer: yes"]
    assert len(scores) == 2 and all(s.num_tokens == 1 for s in scores)


def test_janus_generate_end_to_end(data, tmp_path):
    ann, roots, _ = data
    path = tiny_model("janus", tmp_path.parent)
    with model_server(["--backend", "janus", "--model", str(path), *QUIET]) as (target, _):
        run(ann, roots, target, tmp_path, method="generate")
    rows = answers(tmp_path)
    assert set(rows) == {"single", "multi", "inter"}
    for qid, r in rows.items():
        parsed = parse_answer(r["scores"]["text"], CHOICES[qid])
        assert r["prediction"] == parsed.letter and r["scores"]["parse"] == parsed.reason
    s = summary(tmp_path)
    assert s["counts"]["answered"] == 3 and s["counts"]["errors"] == 0
    assert s["counts"]["unparsed"] == sum(r["prediction"] is None for r in rows.values())


def test_hf_scores_the_full_stop_after_each_letter(data, hf):
    """Through a real hf server: under internlm-xcomposer each letter option carries one more
    token (the full stop) than under chat-mean, and the chosen letter follows the mean."""
    _, _, root = data
    target, stub = hf
    counts = {}
    for name in ("chat-mean", "internlm-xcomposer"):
        p = presets.get(name)
        prompt = methods.score_prompt(question("single"), "letter", p)
        d = (root / "media" / "0.png").read_bytes()
        req = pb.ScoreRequest(request_id=f"single-{name}", prompt=pb.Prompt(
            text=prompt.text, images=[pb.Image(data=d, sha256=sha(d))]),
            options=list(prompt.options), raw_prompt=prompt.raw_prompt,
            include_end_of_turn=prompt.include_end_of_turn)
        scores = [(s.logprob_sum, s.num_tokens) for s in stub.Score(req, timeout=60).scores]
        counts[name] = [n for _, n in scores]
        assert methods.pick(p, scores) in "ABCD"
    assert [b - a for a, b in zip(counts["chat-mean"], counts["internlm-xcomposer"],
                                  strict=True)] == [1, 1, 1, 1]
