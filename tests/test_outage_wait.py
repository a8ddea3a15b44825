"""A 10-second outage of every replica mid-run: the run pauses, waits, resumes, errs on nothing.

Both model servers are killed (SIGKILL: in-flight calls are lost too) while a
real `seedbench run` is answering, and restarted on the same ports 10 s later.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from evaluator.results.store import Store
from serving.processes import ROOT, child_env, start_server, stop, wait_serving
from tests.evaluator_runs import run_argv as run_args
from tests.evaluator_runs import write_sample

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
        ev = subprocess.Popen(cmd, env=child_env(), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while answered(out) < 12:
            assert ev.poll() is None and time.monotonic() < deadline, "run ended too early"
            time.sleep(0.05)
        for p in procs:
            p.kill()
        down_at = answered(out)
        time.sleep(10)
        during = answered(out)
        procs = start_pair(tmp_path, ports=tuple(p.port for p in procs))
        stdout, stderr = ev.communicate(timeout=180)
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
    assert run["outage_wait"]["outages"] >= 1 and run["outage_wait"]["waited_s"] >= 5


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
        deadline = time.monotonic() + 60
        while answered(out) < 4:
            assert ev.poll() is None and time.monotonic() < deadline, "run ended too early"
            time.sleep(0.05)
        for p in procs:
            p.kill()
        t0 = time.monotonic()
        _, stderr = ev.communicate(timeout=120)
        took = time.monotonic() - t0
    finally:
        if ev is not None and ev.poll() is None:
            ev.kill()
        stop(procs)
    assert "Traceback" not in stderr
    assert "no model replica came back within 3s" in stderr
    assert stderr.count("all model replicas unreachable") == 1  # waited once, then gave up
    assert 3 <= took < 40
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["errors"] > 0
    assert summary["counts"]["answered"] + summary["counts"]["errors"] == 24 * 2
