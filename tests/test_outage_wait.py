"""An outage of every replica mid-run: the run pauses, waits, resumes, errs on nothing.

Both model servers are killed (SIGKILL: in-flight calls are lost too) while a
real `seedbench run` is answering, and restarted on the same ports once the run
has said it paused (polled from its stderr, not timed).
"""

from __future__ import annotations

import json
import subprocess
import sys

from evaluator.results.store import Store
from serving.processes import ROOT, child_env, start_server, stop, wait_serving
from tests.evaluator_runs import run_argv as run_args
from tests.evaluator_runs import write_sample
from tests.waiting import wait_until

SLOW = ["--backend", "synthetic", "--model", "m1", "--backend-arg", "latency_ms=150",
        "--log-level", "WARNING"]


def answered(out) -> int:
    return Store.count_answers(out)


def start_pair(tmp, ports=(0, 0)):
    procs = [start_server("model_server.cli", SLOW, port=p, log=tmp / f"server{i}.log")
             for i, p in enumerate(ports)]
    try:
        wait_serving(procs, 120)
    except Exception:
        stop(procs)
        raise
    return procs


def test_outage_of_every_replica_is_ridden_out(tmp_path):
    ann, roots = write_sample(tmp_path / "data", per_dim=4)
    out = tmp_path / "out"
    procs = start_pair(tmp_path)
    ev = None
    try:
        target = ",".join(p.target for p in procs)
        cmd = [sys.executable, "-m", "evaluator.cli",
               *run_args(ann, roots, target, out, "--in-flight", "4", "--outage-wait-s", "60")]
        err_log = tmp_path / "evaluator.err"
        with err_log.open("w") as err_file:
            ev = subprocess.Popen(cmd, env=child_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=err_file, text=True)
        wait_until(lambda: answered(out) >= 12 or ev.poll() is not None, timeout=60,
                   what="12 answers stored")
        assert ev.poll() is None, "run ended too early"
        for p in procs:
            p.kill()
        down_at = answered(out)
        wait_until(lambda: "pausing new work" in err_log.read_text() or ev.poll() is not None,
                   timeout=60, what="the run pausing for the outage")
        during = answered(out)
        procs = start_pair(tmp_path, ports=tuple(p.port for p in procs))
        ev.wait(timeout=180)
        stderr = err_log.read_text()
    finally:
        if ev is not None and ev.poll() is None:
            ev.kill()
        stop(procs)
    assert ev.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["errors"] == 0
    assert summary["counts"]["answered"] == 24 * 4
    assert during - down_at <= 4  # only calls already answered when the servers died landed
    assert "all model replicas unreachable: pausing new work" in stderr
    assert "answers again after" in stderr and "resuming" in stderr
    run = json.loads((out / "run.json").read_text())
    assert run["outage_wait"]["outages"] >= 1 and run["outage_wait"]["waited_s"] > 0


def test_outage_longer_than_the_wait_fails_the_rest_with_a_message(tmp_path):
    ann, roots = write_sample(tmp_path / "data", per_dim=2)
    out = tmp_path / "out"
    procs = start_pair(tmp_path)
    ev = None
    try:
        cmd = [sys.executable, "-m", "evaluator.cli",
               *run_args(ann, roots, ",".join(p.target for p in procs), out, "--in-flight", "2",
                         "--outage-wait-s", "3", "--retries", "1")]
        ev = subprocess.Popen(cmd, env=child_env(), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        wait_until(lambda: answered(out) >= 4 or ev.poll() is not None, timeout=60,
                   what="4 answers stored")
        assert ev.poll() is None, "run ended too early"
        for p in procs:
            p.kill()
        _, stderr = ev.communicate(timeout=120)
    finally:
        if ev is not None and ev.poll() is None:
            ev.kill()
        stop(procs)
    assert "Traceback" not in stderr
    assert "no model replica came back within 3s" in stderr
    assert stderr.count("all model replicas unreachable") == 1  # waited once, then gave up
    run = json.loads((out / "run.json").read_text())
    assert run["outage_wait"]["outages"] == 1 and run["outage_wait"]["waited_s"] >= 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["errors"] > 0
    assert summary["counts"]["answered"] + summary["counts"]["errors"] == 24 * 2
