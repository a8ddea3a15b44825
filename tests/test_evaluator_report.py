"""Honest aggregates, visible errors, failing early: summary.json, tables, errors.jsonl, exit codes."""

import json

import pytest

from evaluator import cli
from evaluator.data import benchmarks as B
from evaluator.data.dataset import Question
from evaluator.data.media import MediaError
from evaluator.reports import terminal
from evaluator.results import summary as report
from evaluator.results.failures import Failure
from evaluator.results.runkey import RunKey
from evaluator.results.store import Store
from evaluator.run import plan
from evaluator.run.client import CallFailed
from evaluator.run.errors import QuestionError, failure_of
from protos import seedbench_pb2 as pb
from protos.wire import legacy_score_features
from tests.evaluator_runs import run_argv as run_args
from tests.evaluator_runs import write_sample
from tests.procs import model_server
from tests.test_remote_api import FakeAPI

KEY = RunKey("fp", "ppl", False)


def q(dim: int, k: int) -> Question:
    return Question(index=100 * dim + k, question_id=f"{dim}_{k}", question="x",
                    choices=("a", "b", "c", "d"), answer="A", dimension=dim, data_ids=("i",))


def record(benchmark: str) -> dict:
    return {"benchmark": benchmark, "annotations": "f.json",
            "model": {"name": "m", "fingerprint": "fp", "backend": "synthetic", "details": {}},
            "method": "ppl", "include_end_of_turn": False, "filters": {}, "skipped_invalid": 0,
            "clip": None, "key": KEY.to_dict()}


def v1_store(tmp_path, answer) -> Store:
    """SEED-Bench-1, 2 questions in each of the 12 dims; `answer(question)` says what to store:
    a letter, a Failure, or None (not asked)."""
    store = Store(tmp_path)
    qs = [q(d, k) for d in range(1, 13) for k in range(2)]
    store.set_selection(qs, {})
    store.set_meta("run", record(B.SEED_BENCH_1.name))
    for x in qs:
        a = answer(x)
        if a is None:
            continue
        if isinstance(a, Failure):
            store.put_error(KEY, x, a)
        else:
            store.put_answer(KEY, x, a, None)
    return store


def test_full_groups_are_complete_and_partial_ones_say_what_is_missing(tmp_path):
    def answer(x):
        if x.dimension <= 9:
            return "A" if x.question_id.endswith("_0") else "B"  # half right
        if x.dimension == 10:
            return "A"
        if x.dimension == 11:
            return "A" if x.question_id.endswith("_0") else Failure("UNAVAILABLE", "down", 5)
        return None  # dim 12 never asked

    store = v1_store(tmp_path, answer)
    typed = report.build_summary(store)
    s = typed.to_dict()
    assert typed.groups["Video"].status == "partial" and typed.groups["Image"].status == "complete"
    assert typed.groups["Video"].missing.dimensions == (12,)
    image, video, every = (s["averages"][k] for k in ("Image", "Video", "All"))
    assert image["complete"] is True and image["missing"] is None and image["all"] == 50.0
    assert video["complete"] is False
    assert video["missing"] == {"dimensions": [12], "questions": 3}  # 11_1 errored, 12_* not asked
    assert video["all"] == 100.0  # answered-only: 3 of 3
    assert every["complete"] is False and every["missing"] == {"dimensions": [12], "questions": 3}
    # The leaderboard view counts the 3 unanswered questions as wrong.
    lead = s["all_questions"]
    assert lead["dimensions"]["11"] == {"selected": 2, "correct": 1, "accuracy": 50.0}
    assert lead["dimensions"]["12"] == {"selected": 2, "correct": 0, "accuracy": 0.0}
    assert lead["averages"]["Video"]["all"] == pytest.approx(100 * 3 / 6, abs=1e-4)
    assert lead["averages"]["Video"]["task"] == pytest.approx((100 + 50 + 0) / 3, abs=1e-4)
    assert lead["averages"]["All"] == {
        "task": pytest.approx((50 * 9 + 100 + 50 + 0) / 12, abs=1e-4),
        "all": pytest.approx(100 * 12 / 24, abs=1e-4), "correct": 12, "selected": 24,
        "complete": False, "missing": {"dimensions": [12], "questions": 3}}
    assert lead["averages"]["Image"]["complete"] is True
    assert lead["averages"]["All"]["all"] < s["averages"]["All"]["all"]
    # The tables mark partial groups and carry the heading.
    text = render(typed)
    assert "(partial)" in text and "no answers in dims 12" in text
    assert "method ppl - preset chat-mean - answered 21/24 (87.5%) - errors 1" in text
    assert "Leaderboard view" in text
    store.close()


def test_a_filtered_run_is_partial_and_null_groups_stay_null(tmp_path):
    store = Store(tmp_path)
    qs = [q(1, 0), q(2, 0)]
    store.set_selection(qs, {})
    store.set_meta("run", {**record(B.SEED_BENCH_2.name)})
    for x in qs:
        store.put_answer(KEY, x, "A", None)
    typed = report.build_summary(store)
    s = typed.to_dict()
    assert typed.groups["L3"].status == "n/a" and typed.groups["Single"].status == "partial"
    assert s["averages"]["Single"]["complete"] is False
    assert s["averages"]["Single"]["missing"] == {"dimensions": list(range(3, 17)),
                                                  "questions": 0}
    assert s["averages"]["L3"] is None and s["all_questions"]["averages"]["L3"] is None
    assert s["all_questions"]["averages"]["Single"]["all"] == 100.0
    # Every group carries its coverage, the n/a ones too: null score, the flag beside it.
    groups = s["group_coverage"]
    assert list(groups) == list(s["averages"]) == list(s["all_questions"]["averages"])
    assert groups["Single"] == {"complete": False, "missing": s["averages"]["Single"]["missing"]}
    for label in ("L3", "P2", "P3", "Multi", "Video"):
        assert s["averages"][label] is None and groups[label]["complete"] is False
    assert groups["P3"]["missing"] == {"dimensions": [25, 26, 27], "questions": 0}
    assert groups["L3"]["missing"]["dimensions"] == list(range(3, 28))
    text = render(typed)
    assert "n/a: no answers in dims 25-27" in text  # the P3 row says why it is n/a
    store.close()


def test_failures_are_typed_values_with_a_status():
    assert failure_of(CallFailed(None, "x", 2)) == Failure("ERROR", "x", 2)
    assert failure_of(MediaError("data_id", "missing")) == Failure("MEDIA", "data_id: missing")
    assert failure_of(QuestionError("3 scores")) == Failure("QUESTION", "3 scores")
    assert failure_of(OSError("disk")) == Failure("IO", "disk")
    internal = failure_of(KeyError("k"))
    assert internal.status == "INTERNAL" and internal.message.startswith("internal error: KeyError")
    assert internal.attempts is None
    assert str(Failure("UNAVAILABLE", "down", 5)) == "UNAVAILABLE: down (after 5 attempt(s))"


def test_errors_are_grouped_listed_and_written(tmp_path):
    def answer(x):
        if x.dimension == 1:
            return Failure("INVALID_ARGUMENT", f"[{x.question_id}] prompt.images: too many", 1)
        if x.dimension == 2:
            return Failure("UNAVAILABLE", "connection refused", 5)
        return "A"

    store = v1_store(tmp_path, answer)
    typed = report.write_outputs(store, tmp_path)
    s = typed.to_dict()
    assert s == json.loads((tmp_path / "summary.json").read_text())
    assert s["error_reasons"] == [
        {"status": "INVALID_ARGUMENT", "reason": "[{id}] prompt.images: too many",
         "count": 2, "examples": ["1_0", "1_1"],
         "messages": ["[1_0] prompt.images: too many", "[1_1] prompt.images: too many"]},
        {"status": "UNAVAILABLE", "reason": "connection refused", "count": 2,
         "examples": ["2_0", "2_1"], "messages": ["connection refused"]}]
    lines = [json.loads(x) for x in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert lines[0] == {"question_id": "1_0", "dimension": 1, "status": "INVALID_ARGUMENT",
                        "message": "[1_0] prompt.images: too many", "attempts": 1}
    assert [x["question_id"] for x in lines] == ["1_0", "1_1", "2_0", "2_1"]
    assert not typed.all_failed
    text = render(typed)
    assert "Errors by reason" in text and "[{id}] prompt.images: too many" in text
    store.close()


def test_report_of_an_all_failed_run_exits_1_with_the_reasons(tmp_path, capsys):
    store = v1_store(tmp_path, lambda x: Failure("UNAVAILABLE", "connection refused", 5)
                     if x.dimension < 12 else Failure("DEADLINE_EXCEEDED", "slow", 1))
    store.close()
    assert cli.main(["report", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILED: every one of the 24 question(s) asked errored" in out
    assert "22 x UNAVAILABLE: connection refused" in out and "2 x DEADLINE_EXCEEDED" in out
    assert cli.main(["report", str(tmp_path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error_reasons"][0]["count"] == 22


def render(summary) -> str:
    from rich.console import Console

    console = Console(record=True, width=200, file=open("/dev/null", "w"))  # noqa: SIM115
    terminal.print_report(summary, console)
    return console.export_text()


# -- method refusal ------------------------------------------------------------------------


def info(score=True, generate=False, letters_only=False) -> pb.InfoResponse:
    features = legacy_score_features()
    features.option_texts = not letters_only
    return pb.InfoResponse(name="m", backend="b", fingerprint="fp",
                           # details are informational: a letter-scorer's words there change nothing
                           details={"score_mode": "chat-letter"} if not letters_only else {},
                           capabilities=pb.Capabilities(score=score, generate=generate,
                                                        score_features=features))


def test_methods_the_model_cannot_do_are_refused_with_what_would_work():
    assert plan.method_refusal("ppl", info()) is None
    letters = info(letters_only=True)
    why = plan.method_refusal("ppl", letters)
    assert "scores single letters only" in why and why.endswith("use --method letter")
    # A letters-only model that generates can still answer by generating.
    assert plan.method_refusal("generate", info(generate=True, letters_only=True)) is None
    assert plan.method_refusal("letter", letters) is None
    why = plan.method_refusal("letter", info(score=False, generate=True))
    assert "does not advertise score" in why
    assert "does not advertise generate" in plan.method_refusal("generate", info())


# -- over gRPC -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("data"), per_dim=2)


def test_all_failed_run_exits_1_and_prints_why(data, tmp_path, capsys):
    ann, roots = data
    with model_server(["--backend", "synthetic", "--model", "m1", "--backend-arg",
                       "max_images=1", "--log-level", "WARNING"]) as (model, _):
        rc = cli.main(run_args(ann, roots, model, tmp_path, "--dimensions", "17,23"))
    assert rc == 1
    out = capsys.readouterr().out
    assert "FAILED: every one of the 4 question(s) asked errored" in out
    # One reason for all four: the ids and the image counts differ, the cause does not.
    assert "4 x RESOURCE_EXHAUSTED: [{id}] prompt.images: {n} images" in out
    errs = [json.loads(x) for x in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert [(e["question_id"], e["status"]) for e in errs] == [
        ("17_0", "RESOURCE_EXHAUSTED"), ("17_1", "RESOURCE_EXHAUSTED"),
        ("23_0", "RESOURCE_EXHAUSTED"), ("23_1", "RESOURCE_EXHAUSTED")]
    assert "3 images, this model accepts at most 1" in errs[2]["message"]
    assert cli.main(["report", str(tmp_path)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_letter_only_remote_refuses_ppl_before_any_call(data, tmp_path, capsys):
    ann, roots = data
    api = FakeAPI().start()
    api.reset()
    try:
        args = ["--backend", "openai", "--model", "fake-model", "--backend-arg",
                f"base_url={api.url}", "--backend-arg", "score_mode=chat-letter",
                "--log-level", "WARNING"]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("OPENAI_API_KEY", "sk-test")
            with model_server(args, timeout=60) as (model, _):
                rc = cli.main(run_args(ann, roots, model, tmp_path, "--dimensions", "1"))
                err = capsys.readouterr().err
                assert rc == 2, err
                assert "--method ppl cannot run" in err and "--method letter" in err
                assert api.requests == [], "nothing may be sent to the API"
                assert not (tmp_path / "results.sqlite").exists()
                # What would work does work.
                assert cli.main(run_args(ann, roots, model, tmp_path, "--dimensions", "1",
                                         "--method", "letter")) == 0
                assert len(api.calls("/v1/chat/completions")) == 2
    finally:
        api.stop()
