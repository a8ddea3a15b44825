"""The run's typed configuration, its plan, the store key's one serialised form, --dry-run."""

import dataclasses
import json
import re
import subprocess
import sys

import pytest

from evaluator import cli
from evaluator.data import benchmarks as B
from evaluator.data.dataset import Dataset, Filters, Invalid, Question
from evaluator.results import summary as report
from evaluator.results.failures import Failure
from evaluator.results.runkey import RunKey
from evaluator.results.store import Store
from evaluator.run import handlers, l3, plan
from evaluator.run.config import ConfigError, RunConfig, flag
from protos import seedbench_pb2 as pb
from serving.processes import child_env
from tests.evaluator_runs import run_argv as run_args
from tests.evaluator_runs import write_sample
from tests.procs import model_server


def config_of(*extra: str) -> RunConfig:
    argv = ["run", "--annotations", "a.json", "--model", "h:1,h:2", "--model", "h:3",
            "--out", "o", *extra]
    return RunConfig.from_args(cli.build_parser().parse_args(argv))


def q(qid: str, dim: int) -> Question:
    return Question(index=len(qid) + dim, question_id=qid, question="x",
                    choices=("a", "b", "c", "d"), answer="A", dimension=dim, data_ids=("i",))


def info(generate_image: bool, name: str = "m") -> pb.InfoResponse:
    return pb.InfoResponse(name=name, backend="synthetic", fingerprint="fp",
                           capabilities=pb.Capabilities(score=True,
                                                        generate_image=generate_image),
                           details={"b": "2", "a": "1"})


DS = Dataset(benchmark="SEED-Bench-2", file="f.json",
             questions=[q("1_0", 1), q("1_1", 1), q("23_0", 23), q("25_0", 25), q("27_0", 27)],
             invalid=[Invalid("f.json", "9", "answer", "bad")])


async def fake_l3(q, ctx):  # stands for L3Scorer's handlers: the plan only names them
    return handlers.Answer("A")


# -- configuration --------------------------------------------------------------------------


def test_config_is_built_once_and_frozen(tmp_path):
    c = config_of("--dimensions", "1, 5", "--level", "L2", "--clip", "c:9", "--limit", "3",
                  "--media-root", f"cc3m={tmp_path}", "--preset", "seed1-instructblip")
    assert c.targets == ("h:1", "h:2", "h:3")
    assert c.filters == Filters(level="L2", dimensions=frozenset({1, 5}), limit=3)
    assert c.clip == "c:9" and c.include_eot  # the preset scores EOS
    assert c.preset == "seed1-instructblip" and c.preset_spec.name == "seed1-instructblip"
    assert c.media_roots == {"cc3m": tmp_path}
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.method = "letter"  # type: ignore[misc]
    assert config_of().clip is None and config_of().filters == Filters()
    assert config_of("--subpart", "Image Generation").filters.subpart == "Image Generation"


@pytest.mark.parametrize("extra, named", [
    (["--dimensions", "1,x"], "--dimensions"), (["--in-flight", "-1"], "--in-flight"),
    (["--retries", "-2"], "--retries"), (["--deadline-s", "0"], "--deadline-s"),
    (["--connect-timeout-s", "-1"], "--connect-timeout-s"), (["--limit", "-1"], "--limit"),
    (["--subpart", "Image"], "--subpart 'Image' .*Image Generation"),
    (["--method", "generate", "--preset", "seed1-instructblip"], "raw prompt")])
def test_bad_settings_are_refused_naming_the_option(extra, named):
    with pytest.raises(ConfigError) as caught:
        config_of(*extra)
    assert re.search(named, caught.value.message(flag))


def test_the_library_config_is_the_same_object_named_by_field(tmp_path):
    """RunConfig built by keyword (as a library caller does) equals the one the command line
    builds, and a bad value names the field, not a flag."""
    c = RunConfig(annotations="a.json", model=["h:1,h:2", "h:3"], out="o", dimensions=[5, 1],
                  level="L2", clip="c:9", limit=3, media_roots={"cc3m": tmp_path},
                  preset="llava-1.5")
    assert c == config_of("--dimensions", "1, 5", "--level", "L2", "--clip", "c:9", "--limit",
                          "3", "--media-root", f"cc3m={tmp_path}", "--preset", "llava-1.5")
    assert c.model == c.targets == ("h:1", "h:2", "h:3")
    for bad, field, text in [
            ({"in_flight": -1}, "in_flight", "in_flight must be 0 (automatic) or more, got -1"),
            ({"deadline_s": "soon"}, "deadline_s", "deadline_s must be a number, got 'soon'"),
            ({"level": "L4"}, "level", "level must be one of L1, L2, L3, got 'L4'"),
            ({"preset": "nope"}, "preset", "preset: unknown preset 'nope'"),
            ({"max_cost": 5}, "max_cost", "max_cost needs prices FILE"),
            ({"media_roots": {"cc3m": tmp_path / "absent"}}, "media_roots",
             f"media_roots cc3m={tmp_path / 'absent'}: the folder does not exist"),
            ({"model": []}, "model", "model needs at least one HOST:PORT")]:
        with pytest.raises(ConfigError) as caught:
            RunConfig(**{"annotations": "a.json", "model": "h:1", "out": "o", **bad})
        assert caught.value.field == field and str(caught.value).startswith(text), bad
    # The command line shows the same error with its flags.
    with pytest.raises(ConfigError) as caught:
        RunConfig(annotations="a.json", model="h:1", out="o", max_cost=5)
    assert caught.value.message(flag).startswith("--max-cost needs --prices FILE")
    # Prices as a table in code, as the --prices file gives them.
    priced = RunConfig(annotations="a.json", model="h:1", out="o", max_cost=1.0,
                       prices={"m": {"prompt": 2.5, "completion": 10}})
    assert priced.prices["m"].completion == 10.0


def test_bad_setting_exits_2_with_the_reason(tmp_path, capsys):
    argv = ["run", "--annotations", str(tmp_path / "a.json"), "--model", " , ",
            "--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    assert "--model needs at least one" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# -- plan -----------------------------------------------------------------------------------


def test_plan_without_clip_names_handlers_and_reasons():
    p = plan.build(config_of(), DS, info(True), handlers.default_handlers(B.SEED_BENCH_2), clip_record=None,
                   l3_handlers=None, suggested_in_flight=12)
    assert p.key == RunKey("fp", "ppl", False, "")
    assert p.in_flight == 12
    rows = {d.dimension: d for d in p.dimensions}
    assert sorted(rows) == [1, 23, 25, 27]
    assert rows[1].questions == 2 and rows[1].handler == "score_handler"
    assert rows[1].name == "Scene Understanding" and rows[1].unsupported is None
    assert rows[25].handler is None and rows[25].unsupported == l3.NOTE_NO_CLIP
    assert p.unsupported(DS.questions) == {"25_0": l3.NOTE_NO_CLIP, "27_0": l3.NOTE_NO_CLIP}
    assert p.handler(DS.questions[0]) is handlers.score_handler
    assert p.handler(DS.questions[3]) is None
    assert p.record["clip"] is None and p.record["skipped_invalid"] == 1
    assert p.record["model"]["details"] == {"a": "1", "b": "2"}
    d = json.loads(json.dumps(p.as_dict()))
    assert d["questions"] == 5 and d["runnable"] == 3
    assert d["key"] == {"fingerprint": "fp", "method": "ppl", "preset": "chat-mean",
                        "include_end_of_turn": False, "clip": ""}
    assert d["preset"]["name"] == "chat-mean"


def test_plan_refuses_generate_on_a_model_without_it_and_keys_the_preset():
    cfg = config_of("--method", "generate", "--preset", "chat-mean")
    with pytest.raises(plan.PlanError, match="does not advertise generate"):
        plan.build(cfg, DS, info(True), handlers.default_handlers(B.SEED_BENCH_2), clip_record=None,
                   l3_handlers=None, suggested_in_flight=1)
    able = info(True)
    able.capabilities.generate = True
    p = plan.build(cfg, DS, able, handlers.default_handlers(B.SEED_BENCH_2), clip_record=None,
                   l3_handlers=None, suggested_in_flight=1)
    assert p.key == RunKey("fp", "generate", False, "", "chat-mean")
    assert p.record["preset"]["name"] == "chat-mean" and p.record["method"] == "generate"


def test_plan_with_clip_and_image_generation_runs_l3():
    clip = {"name": "tiny", "checkpoint": "", "fingerprint": "clipfp"}
    l3h = {25: fake_l3, 26: fake_l3, 27: fake_l3}
    p = plan.build(config_of("--in-flight", "3", "--method", "letter"), DS, info(True),
                   handlers.default_handlers(B.SEED_BENCH_2), clip_record=clip, l3_handlers=l3h,
                   suggested_in_flight=12)
    assert p.key == RunKey("fp", "letter", False, "clipfp") and p.in_flight == 3
    assert p.unsupported(DS.questions) == {}
    assert {d.dimension: d.handler for d in p.dimensions}[27] == "fake_l3"
    assert p.record["clip"] == clip
    # A model that cannot generate images: L3 is unsupported and the CLIP is not part of the key.
    p = plan.build(config_of(), DS, info(False, "llava"), handlers.default_handlers(B.SEED_BENCH_2),
                   clip_record=clip, l3_handlers=l3h, suggested_in_flight=1)
    assert p.key.clip == "" and p.record["clip"] is None
    why = p.unsupported(DS.questions)["25_0"]
    assert "llava" in why and "generate_image" in why
    assert p.unsupported(DS.questions) == {"25_0": why, "27_0": why}


def test_a_plan_where_nothing_can_run_is_refused():
    only_l3 = Dataset(benchmark="SEED-Bench-2", file="f.json", questions=[q("25_0", 25)],
                      invalid=[])
    with pytest.raises(plan.PlanError, match="none of the 1 selected question.*requires --clip"):
        plan.build(config_of(), only_l3, info(True), handlers.default_handlers(B.SEED_BENCH_2),
                   clip_record=None, l3_handlers=None, suggested_in_flight=1)


def test_a_dimension_without_handler_says_so():
    p = plan.build(config_of(), DS, info(False), {1: handlers.score_handler}, clip_record=None,
                   l3_handlers=None, suggested_in_flight=1)
    assert p.unsupported(DS.questions)["23_0"] == "no handler for dimension 23"
    assert p.unsupported(DS.questions)["25_0"] == l3.NOTE_NEITHER


# -- the store key ------------------------------------------------------------------------


def test_run_key_round_trips_through_the_run_record(tmp_path):
    clip = {"name": "tiny", "checkpoint": "", "fingerprint": "clipfp"}
    p = plan.build(config_of("--preset", "seed1-instructblip"), DS, info(True),
                   handlers.default_handlers(B.SEED_BENCH_2), clip_record=clip,
                   l3_handlers={25: fake_l3}, suggested_in_flight=1)
    store = Store(tmp_path)
    store.set_meta("run", p.record)
    assert RunKey.from_run(store.meta("run")) == p.key == RunKey("fp", "ppl", True, "clipfp",
                                                                 "seed1-instructblip")
    # A record written before the key was stored in it is read from its other fields.
    legacy = {k: v for k, v in p.record.items() if k != "key"}
    assert RunKey.from_run(legacy) == p.key
    store.close()


def test_rows_of_a_key_are_its_answers_only(tmp_path):
    store = Store(tmp_path)
    qs = [q("1_0", 1), q("25_0", 25)]
    store.set_selection(qs, {})
    key = RunKey("fp", "ppl", False, "c1")
    store.put_answer(key, qs[0], "B", None)
    store.put_error(key, qs[1], Failure("UNAVAILABLE", "x", 5))
    store.put_answer(RunKey("fp", "letter", False, "c1"), qs[0], "C", None)
    store.put_answer(RunKey("other", "ppl", False, "c1"), qs[1], "D", None)
    rows = store.rows(key)
    assert [(r.question_id, r.status, r.prediction, r.error) for r in rows] == [
        ("1_0", "ok", "B", None), ("25_0", "error", None, Failure("UNAVAILABLE", "x", 5))]
    assert store.answered_ids(key) == {"1_0"}
    store.close()


# -- --dry-run over gRPC --------------------------------------------------------------------


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    d = tmp_path_factory.mktemp("scripted")
    ann, roots = write_sample(d, per_dim=2)
    script = d / "script.json"
    script.write_text(json.dumps({"name": "plan-model", "generate_image": True,
                                  "log": "calls.jsonl"}))
    with model_server(["--backend", "scripted", "--model", str(script),
                       "--log-level", "WARNING"]) as (target, _):
        yield ann, roots, target, d / "calls.jsonl"


def test_dry_run_prints_the_plan_and_sends_nothing(scripted, tmp_path):
    ann, roots, model, log = scripted
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "evaluator.cli",
           *run_args(ann, roots, model, out, "--dimensions", "1,2,25", "--dry-run", "--json")]
    r = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert p["model"]["name"] == "plan-model" and p["benchmark"] == "SEED-Bench-2"
    assert p["questions"] == 6 and p["runnable"] == 4
    assert [(d["dimension"], d["questions"], d["handler"]) for d in p["dimensions"]] == [
        (1, 2, "score_handler"), (2, 2, "score_handler"), (25, 2, None)]
    assert p["dimensions"][2]["unsupported"] == l3.NOTE_NO_CLIP
    assert p["key"]["fingerprint"] == p["model"]["fingerprint"] and p["key"]["clip"] == ""
    assert p["endpoints"] == [{"target": model, "status": "up"}] and p["in_flight"] >= 1
    assert not out.exists(), "a dry run writes nothing"
    assert not log.exists() or not log.read_text().strip(), "a dry run asks no question"
    # The table form names the same things.
    r = subprocess.run(cmd[:-1], env=child_env(COLUMNS="200"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "score_handler" in r.stdout and "requires --clip" in r.stdout
    # The real run then follows that plan: its summary says what the plan said.
    assert cli.main(run_args(ann, roots, model, out, "--dimensions", "1,2,25")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["answered"] == 4 and summary["counts"]["skipped_unsupported"] == 2
    assert summary["notes"] == [l3.NOTE_NO_CLIP]
    store = Store(out)
    assert RunKey.from_run(store.meta("run")) == RunKey(**{
        "fingerprint": p["key"]["fingerprint"], "method": "ppl", "include_eot": False})
    assert report.build_summary(store).to_dict() == summary
    store.close()
