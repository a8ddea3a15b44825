"""Prometheus metrics of real server processes, scraped over HTTP after real calls (the CLIP
server's: tests/test_clip_server.py, on its shared server)."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
from prometheus_client.parser import text_string_to_metric_families

from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from tests.images import png
from tests.procs import metrics_port, server_process
from tests.waiting import wait_until


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from the /metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(samples: dict, name: str, /, default: float | None = None, **labels: str) -> float:
    """The sample's value; `default` for one not there yet (a labelled series appears with its
    first use), else KeyError."""
    key = (name, tuple(sorted(labels.items())))
    return samples[key] if default is None else samples.get(key, default)


def score(rid: str, options: list[str]) -> pb.ScoreRequest:
    return pb.ScoreRequest(request_id=rid, options=options,
                           prompt=pb.Prompt(text="q?", images=[pb.Image(data=png(1))]))


def test_model_server_metrics_after_good_and_bad_calls():
    args = ["--backend", "synthetic", "--backend-arg", "load_delay_s=0.3", "--backend-arg",
            "latency_ms=50", "--max-batch", "4", "--max-wait-ms", "100", "--metrics-port", "0"]
    with server_process("model_server.cli", args) as (target, proc):
        port = metrics_port(proc)
        with grpc.insecure_channel(target) as ch:
            stub = pb_grpc.ModelServiceStub(ch)
            stub.Info(pb.InfoRequest(), timeout=10)
            with ThreadPoolExecutor(8) as pool:  # concurrent: they share device batches
                answers = list(pool.map(lambda k: stub.Score(score(f"q{k}", ["a", "b"]), timeout=30),
                                        range(8)))
            assert all(len(a.scores) == 2 for a in answers)
            for k in range(2):
                try:
                    stub.Score(score(f"bad{k}", []), timeout=10)
                    raise AssertionError("an empty option list was accepted")
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        svc = {"service": "ModelService"}
        # An aborted call's status reaches the client before the server's interceptor has
        # counted it (abort sends the status, then raises): poll until all 10 are counted.
        m = wait_until(lambda: (s := scrape(port)) and value(
            s, "seedbench_request_duration_seconds_count", default=0, method="Score", **svc) == 10
            and s, timeout=10, what="all 10 Score calls counted")
    assert value(m, "seedbench_requests_total", method="Score", code="OK", **svc) == 8
    assert value(m, "seedbench_requests_total", method="Score", code="INVALID_ARGUMENT", **svc) == 2
    assert value(m, "seedbench_requests_total", method="Info", code="OK", **svc) == 1
    assert value(m, "seedbench_request_duration_seconds_count", method="Score", **svc) == 10
    # Each good call waited for at least one 50 ms batch.
    assert value(m, "seedbench_request_duration_seconds_sum", method="Score", **svc) >= 8 * 0.05
    assert value(m, "seedbench_in_flight_requests", **svc) == 0
    # The 8 good calls ran in device batches of at most 4: all 8 items, in 2 or more batches.
    assert value(m, "seedbench_batch_size_sum", batcher="score") == 8
    assert 2 <= value(m, "seedbench_batch_size_count", batcher="score") <= 8
    assert value(m, "seedbench_batch_size_bucket", batcher="score", le="4.0") == \
        value(m, "seedbench_batch_size_count", batcher="score")
    assert value(m, "seedbench_queue_depth", batcher="score") == 0
    assert 0.3 <= value(m, "seedbench_model_load_seconds") < 60  # seconds, the load's sleep included
    assert not any(dict(k[1]).get("service", "").startswith("Health") for k in m)
