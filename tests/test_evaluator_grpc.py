"""The evaluator over real gRPC against synthetic model servers on loopback ports."""

import json
import subprocess
import sys

import pytest

from evaluator.results.store import Store
from serving.processes import ROOT, child_env, free_port
from tests.evaluator_runs import files, kill_after, write_sample
from tests.evaluator_runs import run as shared_run
from tests.evaluator_runs import run_argv as shared_run_argv
from tests.procs import model_server
from tests.waiting import wait_until

SLOW = ["--backend", "synthetic", "--model", "m1", "--backend-arg", "latency_ms=20",
        "--log-level", "WARNING"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("data"), per_dim=6)


@pytest.fixture(scope="module")
def pair():
    with model_server(SLOW) as (a, _), model_server(SLOW) as (b, _):
        yield a, b


def run_args(*args, **kw):
    return shared_run_argv(*args, connect_timeout_s=2, **kw)


def run(*args, **kw):
    return shared_run(*args, connect_timeout_s=2, **kw)


def test_replicas_share_the_load(data, pair, tmp_path):
    ann, roots = data
    result = run(ann, roots, list(pair), tmp_path)
    assert [e.ok > 0 for e in result.run.endpoints] == [True, True]
    run_file = json.loads((tmp_path / "run.json").read_text())
    assert run_file == result.run.to_dict()
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s == result.summary.to_dict()
    assert s["counts"]["answered"] == 24 * 6 and s["counts"]["errors"] == 0
    assert s["counts"]["skipped_unsupported"] == 18
    assert s["averages"]["L3"] is None and s["dimensions"]["25"]["accuracy"] is None
    assert s["group_coverage"]["L3"]["complete"] is False  # n/a, and flagged as such
    assert s["group_coverage"]["L3"]["missing"]["dimensions"] == [25, 26, 27]
    assert s["group_coverage"]["L1"] == {"complete": True, "missing": None}
    assert any("L3 requires --clip" in n for n in s["notes"])
    assert s["model"]["name"] == "m1" and s["model"]["backend"] == "synthetic"
    assert s["benchmark"] == "SEED-Bench-2"
    # A rerun with the same out asks nothing and writes the same files.
    before = files(tmp_path)
    assert run(ann, roots, pair[0], tmp_path).run.todo == 0
    assert json.loads((tmp_path / "run.json").read_text())["todo"] == 0
    assert files(tmp_path) == before


def test_down_replica_with_live_one_completes(data, pair, tmp_path):
    ann, roots = data
    dead = f"127.0.0.1:{free_port()}"
    result = run(ann, roots, f"{dead},{pair[0]}", tmp_path, dimensions=[1, 2, 23])
    assert result.summary.counts.answered == 18 and result.summary.counts.errors == 0
    assert result.run.endpoints[0].status.startswith("unreachable")
    assert any(w.startswith(f"{dead} left out") for w in result.warnings)


def test_replica_dying_mid_run_is_retried(data, tmp_path):
    ann, roots = data
    with model_server(SLOW) as (a, _), model_server(SLOW) as (b, proc_b):
        cmd = [sys.executable, "-m", "evaluator.cli",
               *run_args(ann, roots, f"{a},{b}", tmp_path, "--in-flight", "4")]
        ev = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: count(tmp_path) >= 20 or ev.poll() is not None, timeout=30,
                       what="20 answers stored")
            assert ev.poll() is None, "the evaluator ended before the replica died"
            proc_b.kill()
            assert ev.wait(60) == 0
        finally:
            if ev.poll() is None:
                ev.kill()
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["counts"]["answered"] == 24 * 6 and s["counts"]["errors"] == 0
    ep_a, ep_b = json.loads((tmp_path / "run.json").read_text())["endpoints"]
    assert ep_b["ok"] > 0 and ep_a["ok"] > ep_b["ok"]


def test_fingerprint_mismatch_is_a_clear_error(data, tmp_path):
    ann, roots = data
    with model_server(["--backend", "synthetic", "--model", "m1"]) as (a, _), \
            model_server(["--backend", "synthetic", "--model", "m2"]) as (b, _):
        r = subprocess.run([sys.executable, "-m", "evaluator.cli",
                            *run_args(ann, roots, f"{a},{b}", tmp_path)],
                           env=child_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "fingerprints differ" in r.stderr and "m1" in r.stderr and "m2" in r.stderr


def test_bad_questions_skipped_good_ones_run(data, pair, tmp_path):
    ann, roots = data
    doc = json.loads(ann.read_text())
    qs = [q for q in doc["questions"] if q["question_type_id"] in (1, 2)]
    qs[0] = {**qs[0], "answer": "Z"}
    qs[1] = {**qs[1], "data_id": "../escape.jpg"}
    qs[2] = {**qs[2], "data_id": "missing.jpg"}
    del qs[3]["choice_b"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(qs))
    out = tmp_path / "out"
    assert not run(bad, roots, pair[0], out).all_failed
    s = json.loads((out / "summary.json").read_text())
    assert s["counts"]["skipped_invalid"] == 4 and s["counts"]["answered"] == 8
    invalid = [json.loads(x) for x in (out / "invalid.jsonl").read_text().splitlines()]
    assert {(x["question_id"], x["field"]) for x in invalid} == {
        (qs[0]["question_id"], "answer"), (qs[1]["question_id"], "data_id"),
        (qs[2]["question_id"], "data_id"), (qs[3]["question_id"], "choice_b")}
    assert all(x["file"] == str(bad) for x in invalid)
    assert len((out / "submission.jsonl").read_text().splitlines()) == 8


def count(out):
    return Store.count_answers(out)


def test_killed_run_resumes_to_identical_outputs(data, pair, tmp_path):
    ann, roots = data
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cmd = [sys.executable, "-m", "evaluator.cli"]
    ev = subprocess.Popen([*cmd, *run_args(ann, roots, pair[0], killed, "--in-flight", "1")],
                          env=child_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    partial = kill_after(ev, killed, 25, timeout_s=30)
    assert 25 <= partial < 24 * 6
    # A report from the partial store works.
    r = subprocess.run([*cmd, "report", str(killed), "--json"], env=child_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["counts"]["answered"] == partial
    for out in (killed, clean):
        subprocess.run([*cmd, *run_args(ann, roots, pair[0], out, "--in-flight", "8")],
                       env=child_env(), check=True, capture_output=True, timeout=120)
    assert json.loads((killed / "run.json").read_text())["todo"] == 24 * 6 - partial
    assert files(killed) == files(clean)
    assert count(killed) == 24 * 6


NO_TORCH = """
import sys
{body}
bad = [m for m in ("torch", "transformers", "model_server") if m in sys.modules]
print("BAD", bad)
sys.exit(3 if bad else rc)
"""


def test_evaluator_imports_no_torch():
    modules = ("evaluator, evaluator.cli, evaluator.run.runner, evaluator.run.client, "
               "evaluator.data.dataset, evaluator.data.media, evaluator.run.methods, "
               "evaluator.results.metrics, evaluator.results.summary, evaluator.results.store, "
               "evaluator.results.submission, evaluator.data.sample_data, evaluator.run.progress, "
               "evaluator.data.benchmarks, evaluator.demo, evaluator.run.config, evaluator.run.plan, "
               "evaluator.results.runkey, evaluator.results.failures, evaluator.results.coverage, "
               "evaluator.data.annotation_file, evaluator.data.parquet_snapshot, "
               "evaluator.data.embedded_images, evaluator.data.sample_text_rich")
    body = f"import {modules}\nrc = 0"
    r = subprocess.run([sys.executable, "-c", NO_TORCH.format(body=body)], env=child_env(),
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_seedbench_run_imports_no_torch(data, pair, tmp_path):
    ann, roots = data
    args = run_args(ann, roots, pair[0], tmp_path, "--dimensions", "1")
    body = f"from evaluator import cli\nrc = cli.main({args!r})"
    r = subprocess.run([sys.executable, "-c", NO_TORCH.format(body=body)], env=child_env(),
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BAD []" in r.stdout
    # The library's own entry points import no more than the command line does.
    plain_roots = {k: str(v) for k, v in roots.items()}
    body = ("from evaluator import RunConfig, evaluate\n"
            f"r = evaluate(RunConfig(annotations={str(ann)!r}, media_roots={plain_roots!r}, "
            f"model={pair[0]!r}, out={str(tmp_path / 'api')!r}, dimensions=[1]))\n"
            "rc = 0 if r.summary.counts.answered == 6 else 4")
    r = subprocess.run([sys.executable, "-c", NO_TORCH.format(body=body)], env=child_env(),
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BAD []" in r.stdout


def test_refused_questions_are_errors_and_retried_next_run(data, pair, tmp_path):
    ann, roots = data
    with model_server(["--backend", "synthetic", "--model", "m1", "--backend-arg",
                       "max_images=1"]) as (one_image, _):
        assert not run(ann, roots, one_image, tmp_path, dimensions="1,17").all_failed
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["dimensions"]["17"] == {"name": "Difference Spotting", "correct": 0, "total": 0,
                                     "errors": 6, "unparsed": 0, "accuracy": None, "n": 0,
                                     "ci95": None, "ci_method": "wilson"}
    assert s["counts"]["errors"] == 6 and s["counts"]["answered"] == 6
    assert s["averages"]["Multi"] is None and s["averages"]["Single"]["all"] is not None
    assert len((tmp_path / "submission.jsonl").read_text().splitlines()) == 6
    # Same model (same fingerprint) that accepts two images: only the errors are asked again.
    assert run(ann, roots, pair[0], tmp_path, dimensions="1,17").run.todo == 6
    assert json.loads((tmp_path / "run.json").read_text())["todo"] == 6
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["counts"]["errors"] == 0 and s["counts"]["answered"] == 12
