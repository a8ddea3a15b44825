"""`make up / eval / status / down` on a machine with kubectl but no cluster: local processes."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import pytest

from deploy import policy, workflow
from serving.processes import ROOT, ServerProcess, alive, child_env, health, stop


def make(target: str, env: dict[str, str], *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    # -o .venv/.installed: use the environment as it is (never reinstall from a test).
    return subprocess.run(["make", "-s", "-o", ".venv/.installed", target, *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_up_eval_status_down_without_a_cluster(tmp_path):
    env = child_env(SEEDBENCH_LOCAL_RUN_DIR=str(tmp_path / "run"),
                    KUBECONFIG=str(tmp_path / "no-kubeconfig"),  # kubectl: no current context
                    PATH=os.environ["PATH"])
    state_file = tmp_path / "run" / "state.json"
    up = make("up", env)
    procs = ([ServerProcess(**p) for p in json.loads(state_file.read_text())["procs"]]
             if state_file.exists() else [])
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        first = up.stdout.splitlines()[0]
        assert first.startswith("no cluster (kubectl has no current context)"), first
        assert sorted(p.name for p in procs) == ["clip-0", "model-0", "model-1"]
        assert all(alive(p) and health(p.target) == "SERVING" for p in procs)
        # Each process has its own metrics port (pods all use 9090), and it answers.
        metrics = workflow.metrics_targets(json.loads(state_file.read_text()))
        assert sorted(metrics) == ["clip-0", "model-0", "model-1"] and len(set(metrics.values())) == 3
        for target in metrics.values():
            with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as r:
                assert b"seedbench_model_load_seconds" in r.read()

        out = tmp_path / "out"
        ev = make("eval", env, f"OUT={out}")
        assert ev.returncode == 0, ev.stdout[-2000:] + ev.stderr[-2000:]
        run = json.loads((out / "llava" / "run.json").read_text())
        assert run["answered"] == run["todo"] > 0 and run["errors"] == 0
        models = {p.target for p in procs if p.role == "model"}
        assert {e["target"] for e in run["endpoints"]} == models
        assert all(e["ok"] > 0 for e in run["endpoints"]), run["endpoints"]  # each served a share
        assert run["throughput_qps"] > 0 and set(run["latency_ms"]) == {"p50", "p90", "p99"}
        assert "questions/s" in ev.stdout and all(t in ev.stdout for t in models)  # the summary

        st = make("status", env)
        assert st.returncode == 0 and st.stdout.count("SERVING") == 3, st.stdout

        down = make("down", env)
        assert down.returncode == 0, down.stderr
        assert "stopped 3 process(es)" in down.stdout
        assert not any(alive(p) for p in procs)
        assert not state_file.exists()
        assert make("status", env).returncode != 0
    finally:
        stop(procs, grace_s=5)


def test_the_plan_comes_from_the_rendered_overlay(monkeypatch, tmp_path):
    if workflow.manifests.kubectl() is None:
        pytest.skip("kubectl not on PATH")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    assert workflow.cluster_problem() == "kubectl has no current context"
    plan = workflow.local_plan("local", "qwen2-vl")
    assert plan.tiny_args == ["tiny", "--arch", "qwen2_vl", "--out", "/models/tiny-qwen2-vl"]
    assert "--device=cpu" in plan.model_args and "--max-batch=4" in plan.model_args
    assert not any(a.startswith(("--host", "--port")) for a in plan.model_args)
    with pytest.raises(SystemExit, match="no model 'nope'; it has llava, qwen2-vl"):
        workflow.local_plan("local", "nope")
    docs = workflow.manifests.load_docs(workflow.manifests.render_overlay(workflow.manifests.K8S_DIR, "gpu"))
    job = workflow.job_for(next(d for d in docs if d["kind"] == "Job"), "qwen2-vl")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert job["metadata"]["name"] == "seedbench-eval-qwen2-vl"
    assert "--model=dns:///model-qwen2-vl:50051" in args and "--out=/results/qwen2-vl" in args
    others = [d for d in docs if d["kind"] != "Job"]
    assert policy.project_problems([*others, job]) == []  # its target is a real Service
