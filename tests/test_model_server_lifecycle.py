"""Health, reflection and graceful drain of the real server process."""

from __future__ import annotations

import signal

import grpc
from grpc_health.v1 import health_pb2

from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from serving.processes import child_env, health_status, wait_serving
from tests import reflection
from tests.images import png
from tests.procs import first_health, metrics_port, model_server
from tests.test_metrics import scrape, value
from tests.waiting import wait_until

SERVICE = "seedbench.v1.ModelService"


def calls_in_flight(port: int) -> float:
    return value(scrape(port), "seedbench_in_flight_requests", 0.0, service="ModelService")


def _score(rid="q"):
    return pb.ScoreRequest(request_id=rid, options=["a", "b"],
                           prompt=pb.Prompt(text="q?", images=[pb.Image(data=png(1))]))


def test_not_serving_until_loaded_then_serving():
    args = ["--backend", "synthetic", "--backend-arg", "load_delay_s=3"]
    with model_server(args, wait=False) as (target, proc):
        assert first_health(target) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert health_status(target, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
        with grpc.insecure_channel(target) as ch:
            try:
                pb_grpc.ModelServiceStub(ch).Score(_score(), timeout=5)
                raise AssertionError("Score answered while loading")
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE
                assert "loading" in err.details()
        wait_serving(proc, timeout_s=30)
        assert health_status(target, SERVICE) == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_drains_in_flight_calls_then_exits_zero():
    args = ["--backend", "synthetic", "--backend-arg", "latency_ms=1000", "--max-batch", "1",
            "--metrics-port", "0"]
    with model_server(args) as (target, proc):
        with grpc.insecure_channel(target) as ch:
            stub = pb_grpc.ModelServiceStub(ch)
            in_flight = [stub.Score.future(_score(f"q{k}"), timeout=30) for k in range(2)]
            wait_until(lambda: calls_in_flight(metrics_port(proc)) == 2, what="both calls in flight")
            proc.send_signal(signal.SIGTERM)
            wait_until(lambda: health_status(target) != health_pb2.HealthCheckResponse.SERVING,
                       what="health leaves SERVING on SIGTERM")
            for fut in in_flight:
                assert len(fut.result().scores) == 2
        assert proc.wait(30) == 0


def test_reflection_lists_and_resolves_the_services_in_both_versions():
    """A client speaking only one reflection version (v1, or v1alpha) lists the services,
    resolves the file that defines seedbench.v1.ModelService, and gets NOT_FOUND for a name
    that is not there."""
    with model_server(["--backend", "synthetic"]) as (target, _):
        for version in ("v1", "v1alpha"):
            names = reflection.services(target, version)
            assert names == {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                             "grpc.reflection.v1alpha.ServerReflection"}, version
            files = reflection.file_containing(target, version, SERVICE)
            assert files[0].name == "protos/seedbench.proto", version
            assert reflection.service_methods(files, SERVICE) == [
                "Info", "Score", "Generate", "GenerateImage"], version
            assert reflection.file_containing(target, version, "seedbench.v1.NoSuchService") == []
            own = f"grpc.reflection.{version}.ServerReflection"
            assert reflection.service_methods(reflection.file_containing(target, version, own),
                                              own) == ["ServerReflectionInfo"], version


def _serve_once(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "model_server.cli", "serve", "--port", "0", *args],
                          env=child_env(), capture_output=True, text=True, timeout=120)


def test_unknown_backend_is_refused_by_the_cli():
    out = _serve_once("--backend", "nope")
    assert out.returncode == 2
    assert "invalid choice: 'nope'" in out.stderr


def test_model_that_fails_to_load_exits_one_with_the_reason(tmp_path):
    out = _serve_once("--backend", "hf", "--model", str(tmp_path / "missing"))
    assert out.returncode == 1
    assert "model failed to load" in out.stderr and "no config.json" in out.stderr
