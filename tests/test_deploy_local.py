"""Process mode: `python -m deploy.local up/status/down` with real server processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from deploy.local import launcher
from serving.processes import health_status

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.local", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def gone(pid: int, start_time: int | None) -> bool:
    p = launcher.Proc("x", "model", pid, start_time, "127.0.0.1", 0, "")
    return not launcher.alive(p)


def test_two_synthetic_replicas_up_status_down(tmp_path):
    run = str(tmp_path / "run")
    up = cli("up", "--backend", "synthetic", "--model-dir", "synthetic", "--replicas", "2",
             "--run-dir", run, "--grace-s", "5", "--timeout-s", "60")
    state = json.loads((tmp_path / "run" / "state.json").read_text()) if up.returncode == 0 else {}
    procs = state.get("procs", [])
    try:
        assert up.returncode == 0, up.stderr
        assert len(procs) == 2
        targets = state["targets"]["model"].split(",")
        assert len(set(targets)) == 2 and all(t.startswith("127.0.0.1:") for t in targets)
        for t in targets:
            assert health_status(t) == 1  # SERVING
            assert health_status(t, "seedbench.v1.ModelService") == 1
            assert launcher.health(t) == "SERVING"
        st = cli("status", "--run-dir", run, "--json")
        assert st.returncode == 0, st.stdout + st.stderr
        assert [r["health"] for r in json.loads(st.stdout)["processes"]] == ["SERVING"] * 2

        again = cli("up", "--backend", "synthetic", "--model-dir", "synthetic", "--run-dir", run)
        assert again.returncode == 2 and "already running" in again.stderr

        down = cli("down", "--run-dir", run)
        assert down.returncode == 0, down.stderr
        assert "warning" not in down.stderr, "idle servers exit on SIGTERM: none killed"
        assert all(gone(p["pid"], p["start_time"]) for p in procs)
        assert not (tmp_path / "run" / "state.json").exists()
        assert cli("status", "--run-dir", run).returncode == 3
    finally:
        launcher.stop([launcher.Proc(**p) for p in procs], 5)


def test_failed_start_leaves_nothing_behind(tmp_path):
    run = tmp_path / "run"
    # A backend that takes longer to load than `up` waits: up must stop what it started.
    up = cli("up", "--backend", "synthetic", "--model-dir", "synthetic", "--replicas", "2",
             "--server-arg=--backend-arg=load_delay_s=30", "--run-dir", str(run),
             "--timeout-s", "3")
    assert up.returncode == 1
    assert "not SERVING after 3s" in up.stderr
    assert not (run / "state.json").exists()
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", up.stderr)]
    assert len(pids) == 2
    assert all(gone(pid, None) for pid in pids)


def test_ports_must_match_replicas(tmp_path):
    r = cli("up", "--backend", "synthetic", "--model-dir", "m", "--replicas", "2",
            "--ports", "50999", "--run-dir", str(tmp_path))
    assert r.returncode != 0 and "1 port(s) given for 2" in r.stderr


def test_job_args_run_against_local_replicas(tmp_path):
    """The evaluator Job's own args, with /data, /results and the dns:/// targets swapped
    for local paths and process-mode targets, answer every sample question over 2 replicas."""
    import yaml

    job = yaml.safe_load((ROOT / "deploy/k8s/base/evaluator-job.yaml").read_text())
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    run = str(tmp_path / "run")
    data = tmp_path / "data"
    assert subprocess.run([sys.executable, "-m", "evaluator.cli", "sample-data", "--out", str(data),
                           "--per-dim", "1"], cwd=ROOT, capture_output=True).returncode == 0
    up = cli("up", "--backend", "synthetic", "--model-dir", "synthetic", "--replicas", "2",
             "--run-dir", run, "--grace-s", "5", "--timeout-s", "60")
    state = json.loads((tmp_path / "run" / "state.json").read_text()) if up.returncode == 0 else {}
    try:
        assert up.returncode == 0, up.stderr
        local = []
        for a in args:
            a = a.replace("/data", str(data)).replace("/results", str(tmp_path / "results"))
            a = a.replace("dns:///model-llava:50051", state["targets"]["model"])
            local.append(a.replace("--clip=dns:///clip-server:50061", "--connect-timeout-s=60"))
        r = subprocess.run([sys.executable, "-m", "evaluator.cli", *local], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        info = json.loads((tmp_path / "results" / "llava" / "run.json").read_text())
        assert info["answered"] == info["todo"] > 0 and info["errors"] == 0
        assert [e["calls"] > 0 for e in info["endpoints"]] == [True, True]
    finally:
        assert cli("down", "--run-dir", run).returncode == 0 or not state


def test_a_second_up_while_one_is_starting_is_refused(tmp_path):
    run = tmp_path / "run"
    with launcher.starting(run) as ok:
        assert ok
        r = cli("up", "--backend", "synthetic", "--model-dir", "synthetic", "--run-dir", str(run))
    assert r.returncode == 2 and "another `up` is starting processes" in r.stderr
    assert not (run / "state.json").exists()
