"""A whole evaluator run against a remote chat model whose API misbehaves (loopback stand-in).

The run must complete with faults injected, spend at most the documented
upstream calls per question, leave a failing question as an error that a rerun
of the same output directory finishes without duplicates, and keep an API key
that the upstream echoes out of every file the run writes and every log line.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from evaluator import RunResult, cli
from evaluator.cli.run import EXIT_STOPPED
from tests.evaluator_runs import files, write_sample
from tests.evaluator_runs import run as api_run
from tests.evaluator_runs import run_argv as run_args
from tests.procs import model_server, stop
from tests.test_remote_api import FakeAPI, chat_prompt_tokens

KEY = "sk-run-secret-5555666677778888"
MAX_RETRIES = 3
DIMS = "1,2,3"
PER_DIM = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("data"), per_dim=PER_DIM)


@contextlib.contextmanager
def chat_server(api: FakeAPI):
    args = ["--backend", "openai", "--model", "chat-model", "--max-wait-ms", "20",
            "--backend-arg", f"base_url={api.url}", "--backend-arg", "backoff_s=0.01",
            "--backend-arg", f"max_retries={MAX_RETRIES}", "--backend-arg", "timeout_s=1"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", KEY)
        with model_server(args, timeout=60) as running:
            mp.undo()
            yield running


def questions_text(api: FakeAPI) -> list[str]:
    return [b["messages"][0]["content"][-1]["text"] for b in api.calls("/v1/chat/completions")]


def unique_prompt(ann: Path) -> str:
    """The start of one selected question's letter prompt (question and listed options),
    unique among the selected questions, to aim a fault at it."""
    selected = [q for q in json.loads(ann.read_text())["questions"]
                if str(q["question_type_id"]) in DIMS.split(",")]
    heads = [q["question"] + "\n" + "\n".join(f"{k}. {q['choice_' + k.lower()]}" for k in "ABCD")
             for q in selected]
    return next(h for h in heads if heads.count(h) == 1)


def aim(head: str) -> str:
    """The head as it appears in a request's JSON body (fail_when matches the body text)."""
    return json.dumps(head)[1:-1]


def run(ann, roots, target, out) -> RunResult:
    result = api_run(ann, roots, target, out, method="letter", dimensions=DIMS, retries=5)
    assert not result.all_failed
    return result


def test_faults_are_absorbed_within_the_budget(data, api, tmp_path):
    ann, roots = data
    api.reset()
    api.slow_s = 2.5
    api.script = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.1"}),
                  (500, {"error": {"message": "boom"}}, {}), ("badjson", {}, {}),
                  ("truncate", {}, {}), ("slow", {}, {}), ("reset", {}, {})]
    with chat_server(api) as (target, _):
        run(ann, roots, target, tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    n = 3 * PER_DIM
    assert s["counts"]["answered"] == n and s["counts"]["errors"] == 0
    sent = questions_text(api)
    assert len(sent) == n + 6  # every fault cost exactly one retry
    assert max(sent.count(t) for t in set(sent)) <= 1 + MAX_RETRIES
    # run.json tallies what the API's `usage` said, and the requests and retries it cost
    (endpoint,) = json.loads((tmp_path / "run.json").read_text())["endpoints"]
    up = endpoint["upstream"]
    # every attempt counts, also one on a pooled connection the stand-in had already closed
    assert up["requests"] == n + up["retries"] >= len(sent) and up["retries"] >= 6
    assert up["completion_tokens"] == n  # one letter token per answered question
    assert up["prompt_tokens"] == sum(chat_prompt_tokens(b["messages"][0]["content"])
                                      for b in api.calls("/v1/chat/completions")[-n:])


def test_a_failing_question_errors_once_and_a_rerun_finishes_it(data, api, tmp_path):
    ann, roots = data
    api.reset()
    target_line = unique_prompt(ann)
    api.fail_when = {aim(target_line): (503, {"error": {"message": "overloaded"}}, {})}
    with chat_server(api) as (target, _):
        run(ann, roots, target, tmp_path)
        s = json.loads((tmp_path / "summary.json").read_text())
        assert s["counts"]["errors"] == 1 and s["counts"]["answered"] == 3 * PER_DIM - 1
        sent = questions_text(api)
        # the evaluator did not retry the upstream failure: 1 + max_retries calls at most (a
        # retry of the server's own may die on a pooled connection the stand-in had already
        # closed, spending the budget without reaching it; an evaluator retry would double it)
        poisoned = sum(target_line in t for t in sent)
        assert 1 < poisoned <= 1 + MAX_RETRIES, poisoned
        assert len(sent) == 3 * PER_DIM - 1 + poisoned
        api.reset()
        run(ann, roots, target, tmp_path)
    assert json.loads((tmp_path / "run.json").read_text())["todo"] == 1
    assert len(questions_text(api)) == 1
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["counts"]["errors"] == 0 and s["counts"]["answered"] == 3 * PER_DIM
    lines = (tmp_path / "submission.jsonl").read_text().splitlines()
    ids = [json.loads(line)["question_id"] for line in lines]
    assert len(ids) == len(set(ids)) == 3 * PER_DIM
    assert files(tmp_path)[0]  # summary written


def test_a_question_with_no_letter_among_the_top_tokens_is_never_an_a(data, api, tmp_path):
    ann, roots = data
    api.reset()
    head = unique_prompt(ann)
    api.chat_replies = {head: ("I cannot see the image.", [{"token": "I", "logprob": -0.1},
                                                           {"token": "Sorry", "logprob": -1.0}])}
    with chat_server(api) as (target, _):
        result = run(ann, roots, target, tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    # answered and wrong, counted unparsed (as a generated reply naming no option), never an "A"
    assert s["counts"]["errors"] == 0 and s["counts"]["answered"] == 3 * PER_DIM
    assert s["counts"]["unparsed"] == 1
    assert sum(d["unparsed"] for d in s["dimensions"].values()) == 1
    (unparsed,) = [q for q in result.questions(evidence=True)
                   if q.status == "ok" and q.prediction is None]
    qid = unparsed.question_id
    assert "none of A, B, C, D among the top 2 first tokens" in unparsed.evidence["unparsed"]
    lines = (tmp_path / "submission.jsonl").read_text().splitlines()
    assert qid not in {json.loads(line)["question_id"] for line in lines}
    assert len(lines) == 3 * PER_DIM - 1
    api.reset()  # a rerun does not ask again: the question is answered
    with chat_server(api) as (target, _):
        run(ann, roots, target, tmp_path)
    assert not questions_text(api)


def test_an_echoed_key_reaches_no_output_file_and_no_log(data, api, tmp_path):
    ann, roots = data
    api.reset()
    api.fail_when = {aim(unique_prompt(ann)): (401, {"error": {
        "message": f"Incorrect API key provided: {KEY}; got 'Authorization: Bearer {KEY}'"}}, {})}
    with chat_server(api) as (target, proc):
        run(ann, roots, target, tmp_path)
        stop(proc)
        log = Path(proc.log).read_text()
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["counts"]["errors"] == 1
    assert "Incorrect API key provided" in log
    written = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert "results.sqlite" in written and "summary.json" in written and "run.json" in written
    sqlite = written["results.sqlite"]
    assert b"Incorrect API key provided" in sqlite + b"".join(
        p.read_bytes() for p in tmp_path.glob("results.sqlite*"))
    for name, raw in written.items():
        assert KEY.encode() not in raw, name
    for p in tmp_path.glob("results.sqlite*"):  # the write-ahead log too, if any
        assert KEY.encode() not in p.read_bytes(), p.name
    assert KEY not in log


# -- composite L3: a chat model plus an images endpoint elsewhere, with the tiny CLIP server -------

@pytest.fixture(scope="module")
def images_api():
    fake = FakeAPI().start()
    yield fake
    fake.stop()


def test_composite_model_runs_all_27_dimensions_with_l3(data, api, images_api, tmp_path, tiny_clip):

    ann, roots = data
    api.reset()
    images_api.reset()
    args = ["--backend", "openai", "--model", "chat-model", "--max-wait-ms", "20",
            "--backend-arg", f"base_url={api.url}", "--backend-arg", f"image_base_url={images_api.url}",
            "--backend-arg", "image_model=painter",
            "--backend-arg", "capabilities=score,generate,generate_image"]
    with model_server(args, timeout=60) as (target, _):
        assert not api_run(ann, roots, target, tmp_path, method="letter", clip=tiny_clip).partial
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["counts"]["errors"] == 0 and s["counts"]["answered"] == 27 * PER_DIM
    assert all(s["dimensions"][str(d)]["total"] == PER_DIM for d in range(1, 28))
    assert s["averages"]["L3"] is not None
    generated = images_api.calls("/v1/images/generations")
    assert len(generated) >= 2 * PER_DIM  # dims 25 and 26 at least
    assert all(b["model"] == "painter" for b in generated)
    assert not api.calls("/v1/images/generations")


# -- cost: prices, the tally in run.json, --max-cost stopping and resuming ----------------------

def test_max_cost_stops_new_questions_and_a_rerun_with_a_higher_cap_finishes(
        data, api, tmp_path, capsys):
    ann, roots = data
    api.reset()
    prices = tmp_path / "prices.json"
    # $1 per completion token (one letter per answer) and a little per prompt token
    prices.write_text(json.dumps({"chat-model": {"prompt": 0.5, "completion": 1_000_000}}))
    out = tmp_path / "out"
    n = 3 * PER_DIM

    def run_capped(cap: float) -> int:
        return cli.main(run_args(ann, roots, target, out, "--method", "letter", "--dimensions",
                                 DIMS, "--in-flight", "1", "--prices", str(prices),
                                 "--max-cost", str(cap)))

    def expected_cost(bodies: list[dict]) -> float:
        prompt = sum(chat_prompt_tokens(b["messages"][0]["content"]) for b in bodies)
        return round(prompt * 0.5 / 1e6 + len(bodies) * 1.0, 6)

    with chat_server(api) as (target, _):
        assert run_capped(4) == EXIT_STOPPED
        first = api.calls("/v1/chat/completions")
        assert len(first) == 4  # the cap was reached after the fourth answer: no fifth sent
        run_info = json.loads((out / "run.json").read_text())
        usage = run_info["usage"]
        assert usage["requests"] == 4 and usage["retries"] == 0
        assert usage["completion_tokens"] == 4
        assert usage["prompt_tokens"] == sum(chat_prompt_tokens(b["messages"][0]["content"])
                                             for b in first)
        assert usage["cost_usd"] == expected_cost(first) and usage["max_cost_usd"] == 4
        assert "--max-cost" in run_info["stopped"]
        s = json.loads((out / "summary.json").read_text())
        assert s["counts"]["answered"] == 4 and s["counts"]["pending"] == n - 4
        assert "rerun with the same --out and a higher --max-cost" in capsys.readouterr().err

        api.reset()
        assert run_capped(100) == 0
    second = api.calls("/v1/chat/completions")
    assert len(second) == n - 4  # only the questions not yet answered
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["stopped"] is None and run_info["usage"]["cost_usd"] == expected_cost(second)
    lines = (out / "submission.jsonl").read_text().splitlines()
    ids = [json.loads(line)["question_id"] for line in lines]
    assert len(ids) == len(set(ids)) == n
    capsys.readouterr()
    assert cli.main(["report", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"{n - 4} request(s), 0 retried" in shown
    assert f"estimated cost ${expected_cost(second):.4f} (cap $100)" in shown


def test_a_cap_without_a_price_for_the_model_is_refused_before_any_question(
        data, api, tmp_path, capsys):
    ann, roots = data
    api.reset()
    prices = tmp_path / "prices.toml"
    prices.write_text('["other-model"]\nprompt = 2.5\ncompletion = 10\n')
    with chat_server(api) as (target, _):
        for extra in ((), ("--dry-run",)):
            rc = cli.main(run_args(ann, roots, target, tmp_path / "out", "--method", "letter",
                                   "--dimensions", DIMS, "--prices", str(prices),
                                   "--max-cost", "1", *extra))
            assert rc == 2
            err = " ".join(capsys.readouterr().err.split())
            assert "--max-cost needs a price for the model 'chat-model'" in err
            assert "other-model" in err
    assert not api.calls("/v1/chat/completions")


# -- generate through a chat API: the replies a chat model really gives, parsed or unparsed -------

# (reply template, the letter it means or None: unparsed). {L}/{l}: the letter, {T}: its option's
# text, {M}: another letter, {U}: another option's text.
WORDINGS = [
    ("{L}", "L"), ("({L})", "L"), ("**{L}**", "L"), ("Answer: {L}", "L"),
    ("The answer is {L}.", "L"), ("I think it's option {L}.", "L"), ("{L}. {T}", "L"),
    ("{T}", "L"), ("{l}", "L"), ("{L})", "L"),
    ("I cannot tell from this image.", None), ("{L} or {M}", None), ("{L}. {U}", None),
]


def test_generate_through_a_chat_api_parses_each_wording_as_meant(data, api, tmp_path):
    ann, roots = data
    api.reset()
    dims = "1,2,3,4,5"
    selected = [q for q in json.loads(ann.read_text())["questions"]
                if str(q["question_type_id"]) in dims.split(",")]
    choices = {q["question_id"]: [q["choice_" + k.lower()] for k in "ABCD"] for q in selected}
    heads = {q["question_id"]: q["question"] + "\n" + "\n".join(
        f"{k}. {c}" for k, c in zip("ABCD", choices[q["question_id"]], strict=True)) + "\n"
        for q in selected}
    by_head: dict[str, str | None] = {}  # head -> the letter its reply means (None: unparsed)
    for head in dict.fromkeys(heads.values()):  # a repeated question gets the same reply
        template, meant = WORDINGS[len(by_head) % len(WORDINGS)]
        qid = next(i for i, h in heads.items() if h == head)
        k = (len(by_head) + 1) % 4 or 1  # B, C, D, B, ...: never the article-like "A"
        letter, other = "ABCD"[k], "ABCD"[(k + 1) % 4]
        reply = template.format(L=letter, l=letter.lower(), T=choices[qid][k], M=other,
                                U=choices[qid]["ABCD".index(other)])
        api.chat_replies[head] = (reply, [])
        by_head[head] = letter if meant else None
    assert len(by_head) >= len(WORDINGS)  # every wording is used at least once
    with chat_server(api) as (target, _):
        result = api_run(ann, roots, target, tmp_path, method="generate", dimensions=dims)
    sent = api.calls("/v1/chat/completions")
    assert len(sent) == len(selected) and not any(b.get("logprobs") for b in sent)
    rows = {q.question_id: (q.prediction, q.evidence) for q in result.questions(evidence=True)
            if q.status == "ok"}
    assert set(rows) == set(heads)
    for qid, head in heads.items():
        pred, evidence = rows[qid]
        assert pred == by_head[head], (evidence["text"], evidence["parse"])
        assert evidence["text"] == api.chat_replies[head][0]
    s = json.loads((tmp_path / "summary.json").read_text())
    expected_unparsed = sum(by_head[h] is None for h in heads.values())
    assert s["counts"]["answered"] == len(selected) and s["counts"]["errors"] == 0
    assert s["counts"]["unparsed"] == expected_unparsed >= 3
    gt = {q["question_id"]: q["answer"] for q in selected}
    assert sum(d["correct"] for d in s["dimensions"].values()) == sum(
        by_head[heads[i]] == gt[i] for i in heads)
    lines = [json.loads(line) for line in (tmp_path / "submission.jsonl").read_text().splitlines()]
    assert {x["question_id"]: x["prediction"] for x in lines} == {
        i: by_head[h] for i, h in heads.items() if by_head[h] is not None}


# -- presets a chat API cannot take: refused before the run, with what would work ----------------

@pytest.mark.parametrize("preset, reason, generate_works", [
    ("seed1-instructblip", "scoring the end-of-turn token after each option (include_end_of_turn) "
                           "(a remote API cannot score the chat template's end-of-turn token)",
     False),  # a raw prompt: Generate cannot either
    ("qwen-vl-chat", "a raw prompt (raw_prompt) (a chat API always applies the model's chat "
                     "template", False),
    ("internlm-xcomposer", "scoring each letter with '.' after it (this model ranks single "
                           "letters only)", False),  # letter only
])
def test_a_preset_the_chat_api_cannot_take_is_refused_before_any_question(
        data, api, tmp_path, capsys, preset, reason, generate_works):
    ann, roots = data
    api.reset()
    with chat_server(api) as (target, _):
        for extra in ((), ("--dry-run",)):
            rc = cli.main(run_args(ann, roots, target, tmp_path / "out", "--method", "letter",
                                   "--dimensions", DIMS, "--preset", preset, *extra))
            assert rc == 2
            err = " ".join(capsys.readouterr().err.split())  # rich may wrap the line
            assert f"--preset {preset} cannot run on chat-model (openai)" in err
            assert reason in err and "use --preset chat-mean" in err
            assert ("or --method generate" in err) == generate_works
    assert not api.calls("/v1/chat/completions")
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_the_llava_reference_preset_is_refused_on_a_letters_only_model(data, api, tmp_path, capsys):
    """llava-1.5 ranks option texts (ppl); a chat API's typed features say it scores single
    letters only (option_texts false), so the run is refused before any call."""
    ann, roots = data
    api.reset()
    with chat_server(api) as (target, _):
        rc = cli.main(run_args(ann, roots, target, tmp_path / "out", "--dimensions", DIMS,
                               "--preset", "llava-1.5"))
        assert rc == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "--method ppl cannot run" in err and "option_texts is false" in err
    assert not api.calls("/v1/chat/completions")
