"""The process toolkit against real server processes: health, failed starts, stop by PID."""

from __future__ import annotations

import socket
import subprocess

import grpc
import pytest

from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from serving.processes import (
    ServerExited,
    ServerProcess,
    alive,
    health,
    proc_stat,
    start_server,
    stop,
    wait_serving,
)
from tests.images import png
from tests.procs import metrics_port, start_listening
from tests.test_model_server_lifecycle import calls_in_flight
from tests.waiting import wait_until


def test_health_names_the_status_through_loading_serving_and_stop(tmp_path):
    proc = start_listening("model_server.cli", ["--backend", "synthetic", "--backend-arg",
                                                "load_delay_s=3"], log=tmp_path / "s.log")
    try:
        assert health(proc.target) == "NOT_SERVING"  # listening, still loading
        wait_serving(proc, timeout_s=60)
        assert health(proc.target) == "SERVING"
        assert health(proc.target, "seedbench.v1.ModelService") == "SERVING"
    finally:
        notes = stop(proc, grace_s=30)
    assert notes == [] and not alive(proc) and proc.wait(0) == 0
    assert health(proc.target) == "UNREACHABLE"


def test_a_server_that_exits_early_is_named_with_its_log(tmp_path):
    proc = start_server("model_server.cli", ["--backend", "synthetic", "--backend-arg",
                                             "latency_ms=fast"], name="broken",
                        log=tmp_path / "broken.log")
    try:
        with pytest.raises(ServerExited) as err:
            wait_serving(proc, timeout_s=120)
    finally:
        stop(proc)
    assert "broken exited with 2 before SERVING" in str(err.value)
    assert f"log {tmp_path / 'broken.log'}" in str(err.value)
    assert "setting latency_ms: expected a number, got 'fast'" in str(err.value)  # the log's tail


def test_waiting_too_long_says_which_server_and_where_its_log_is(tmp_path):
    proc = start_server("model_server.cli", ["--backend", "synthetic", "--backend-arg",
                                             "load_delay_s=60"], name="slow", log=tmp_path / "slow.log")
    try:
        with pytest.raises(TimeoutError) as err:
            wait_serving(proc, timeout_s=2)
    finally:
        stop(proc, grace_s=10)
    assert f"not SERVING after 2s: slow ({proc.target}); see logs in {tmp_path}" == str(err.value)
    assert not alive(proc)


def test_a_server_still_draining_after_the_grace_is_killed(tmp_path):
    proc = start_listening("model_server.cli", ["--backend", "synthetic", "--backend-arg",
                                                "latency_ms=60000", "--grace-s", "60",
                                                "--metrics-port", "0"], log=tmp_path / "s.log")
    try:
        wait_serving(proc, timeout_s=60)
        with grpc.insecure_channel(proc.target) as ch:
            call = pb_grpc.ModelServiceStub(ch).Score.future(pb.ScoreRequest(
                request_id="q", options=["a", "b"],
                prompt=pb.Prompt(text="q?", images=[pb.Image(data=png(1))])), timeout=90)
            # the call is in flight: SIGTERM alone would wait the server's 60 s grace for it
            wait_until(lambda: calls_in_flight(metrics_port(proc)) == 1, what="the call in flight")
            notes = stop(proc, grace_s=1)
            with pytest.raises(grpc.RpcError):
                call.result(timeout=10)
    finally:
        stop(proc, grace_s=1)
    assert notes == [f"{proc.name} (pid {proc.pid}) still running after 1s: SIGKILL"]
    assert not alive(proc) and proc.wait(0) == -9


def test_stop_by_pid_leaves_a_process_whose_start_time_differs():
    """A recorded PID now held by another process (PID reuse) is never signalled."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        start = proc_stat(other.pid)[1]
        real = ServerProcess("sleep", "model", other.pid, start, "127.0.0.1", 0, "")
        stale = ServerProcess("old", "model", other.pid, start + 1, "127.0.0.1", 0, "")
        assert alive(real) and not alive(stale)
        assert stop(stale, grace_s=0.2) == [] and other.poll() is None
        assert stop(real, grace_s=5) == [] and other.wait(5) == -15
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_a_start_whose_port_was_taken_first_is_retried_on_a_fresh_one(tmp_path, monkeypatch):
    """tests/procs: a port picked free and bound by another process before the server bound it
    (a parallel test worker's server, say) costs a retry, not a failed test or a server that
    answers for another."""
    from serving import processes

    handed: list[int] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        real = processes.free_port

        def pick(host: str = "127.0.0.1") -> int:
            handed.append(real(host) if handed else taken.getsockname()[1])
            return handed[-1]

        monkeypatch.setattr(processes, "free_port", pick)
        proc = start_listening("model_server.cli", ["--backend", "synthetic"], log=tmp_path / "s.log")
        try:
            wait_serving(proc, timeout_s=60)
            assert handed[0] == taken.getsockname()[1] and proc.port == handed[1] and len(handed) == 2
        finally:
            stop(proc)
