"""The cluster half of `make up/eval/down` against a recording stand-in for kubectl.

No cluster here: the stand-in answers like a healthy one (context set, /readyz
ok, rollouts and Jobs complete) and records every call with its stdin, while
`kubectl kustomize` goes to the real kubectl. What it shows is what the workflow
would send a cluster, not that a cluster accepts it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
import yaml

from serving.processes import ROOT, child_env

STAND_IN = """#!{python}
import json, os, subprocess, sys
args = sys.argv[1:]
if args[:1] == ["kustomize"]:
    sys.exit(subprocess.run([{real!r}, *args]).returncode)
stdin = sys.stdin.read() if "-f" in args and "-" in args else ""
with open({log!r}, "a") as f:
    f.write(json.dumps({{"args": args, "stdin": stdin}}) + "\\n")
if args[:2] == ["config", "current-context"]:
    print("stand-in")
elif args[:1] == ["cp"]:
    os.makedirs(os.path.join(args[2], "llava"), exist_ok=True)
elif args[:1] == ["logs"]:
    print("answered 27/27")
"""


@pytest.fixture
def kubectl(tmp_path):
    real = shutil.which("kubectl")
    if real is None:
        pytest.skip("kubectl not on PATH: `kubectl kustomize` cannot render")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    exe = bin_dir / "kubectl"
    exe.write_text(STAND_IN.format(python=sys.executable, real=real, log=str(log)))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    env = child_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def run(*args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
        log.unlink(missing_ok=True)
        r = subprocess.run([sys.executable, "-m", "deploy.workflow", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return r, calls

    return run


def kinds(stdin: str) -> list[str]:
    return [d["kind"] for d in yaml.safe_load_all(stdin) if d]


def test_up_applies_all_but_the_job_and_waits_for_rollouts(kubectl):
    r, calls = kubectl("up", "--overlay", "gpu", "--timeout-s", "300")
    assert r.returncode == 0, r.stderr
    assert "no cluster" not in r.stdout
    applied = next(c for c in calls if c["args"][:1] == ["apply"])
    got = kinds(applied["stdin"])
    assert "Job" not in got
    assert got.count("HorizontalPodAutoscaler") == 2 and got.count("PodDisruptionBudget") == 3
    assert got.count("NetworkPolicy") == 3 and got.count("Deployment") == 3
    assert ["rollout", "status", "deployment", "-l", "app.kubernetes.io/part-of=seedbench",
            "--timeout=300s"] in [c["args"] for c in calls]


def test_eval_runs_the_chosen_models_job_and_copies_the_results_out(kubectl, tmp_path):
    out = tmp_path / "results"
    r, calls = kubectl("eval", "--overlay", "gpu", "--model", "qwen2-vl", "--out", str(out))
    assert r.returncode == 0, r.stderr
    argv = [c["args"] for c in calls]
    job = next(c for c in calls if c["args"][:1] == ["apply"])
    doc = yaml.safe_load(job["stdin"])
    assert doc["kind"] == "Job" and doc["metadata"]["name"] == "seedbench-eval-qwen2-vl"
    assert "--model=dns:///model-qwen2-vl:50051" in doc["spec"]["template"]["spec"]["containers"][0]["args"]
    assert ["wait", "job/seedbench-eval-qwen2-vl", "--for=condition=complete", "--timeout=600s"] in argv
    pod = json.loads(next(c for c in calls if c["args"][:1] == ["apply"] and c is not job)["stdin"])
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert mount == {"name": "results", "mountPath": "/results", "readOnly": True}
    assert ["cp", "seedbench-results-reader:/results", str(out)] in argv
    assert argv[-1][:3] == ["delete", "pod", "seedbench-results-reader"]  # always cleaned up
    assert "answered 27/27" in r.stdout and (out / "llava").is_dir()


def test_down_keeps_the_volumes(kubectl):
    r, calls = kubectl("down", "--overlay", "local")
    assert r.returncode == 0, r.stderr
    deleted = next(c for c in calls if c["args"][:1] == ["delete"] and "-f" in c["args"])
    assert "PersistentVolumeClaim" not in kinds(deleted["stdin"])
    assert "Deployment" in kinds(deleted["stdin"])
    assert any(c["args"][:2] == ["delete", "jobs"] for c in calls)
