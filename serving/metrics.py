"""Prometheus metrics of a server process, served over HTTP on their own port.

What an autoscaler or a dashboard needs, the same series for the model and the
CLIP server:

| series | type | labels | what |
|---|---|---|---|
| `seedbench_requests_total` | counter | service, method, code | calls answered, by gRPC status code |
| `seedbench_request_duration_seconds` | histogram | service, method | time from call to answer |
| `seedbench_in_flight_requests` | gauge | service | calls being handled now |
| `seedbench_queue_depth` | gauge | batcher | items waiting for a device batch |
| `seedbench_batch_size` | histogram | batcher | items per device batch |
| `seedbench_model_load_seconds` | gauge | - | how long the model took to load |

Calls are observed by a gRPC interceptor (health and reflection are left out),
so servicers and backends know nothing of metrics; the batchers report through
their `on_batch` hook and `queue_depth`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from serving.batching import MicroBatcher

OBSERVED_PREFIX = "/seedbench."  # the project's services; not grpc.health / reflection

REQUESTS = Counter("seedbench_requests", "gRPC calls answered, by status code",
                   ["service", "method", "code"])
LATENCY = Histogram("seedbench_request_duration_seconds", "Time from a call's arrival to its answer",
                    ["service", "method"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                             10.0, 30.0, 60.0, 120.0))
IN_FLIGHT = Gauge("seedbench_in_flight_requests", "Calls being handled now", ["service"])
QUEUE_DEPTH = Gauge("seedbench_queue_depth", "Items waiting for a device batch", ["batcher"])
BATCH_SIZE = Histogram("seedbench_batch_size", "Items per device batch", ["batcher"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
MODEL_LOAD = Gauge("seedbench_model_load_seconds", "Seconds the model took to load")


def serve(port: int, host: str = "0.0.0.0") -> int:
    """Expose /metrics on host:port (a daemon thread); returns the bound port."""
    server, _ = start_http_server(port, addr=host)
    return server.server_port


def model_loaded(seconds: float) -> None:
    MODEL_LOAD.set(seconds)


def watch_batchers(batchers: Iterable[tuple[str, MicroBatcher]]) -> None:
    """Report each batcher's batch sizes and its queue, under its name."""
    for name, batcher in batchers:
        batcher.on_batch = BATCH_SIZE.labels(name).observe
        QUEUE_DEPTH.labels(name).set_function(lambda b=batcher: b.queue_depth)


class CallMetrics(grpc.aio.ServerInterceptor):
    """Counts, times and tracks in-flight unary calls of the project's services."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None \
                or not details.method.startswith(OBSERVED_PREFIX):
            return handler
        service, method = details.method[1:].rsplit("/", 1)
        service = service.rsplit(".", 1)[-1]  # seedbench.v1.ModelService -> ModelService
        return grpc.unary_unary_rpc_method_handler(
            _observed(handler.unary_unary, service, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


def _observed(behaviour: Callable, service: str, method: str) -> Callable:
    in_flight = IN_FLIGHT.labels(service)
    latency = LATENCY.labels(service, method)

    async def observed(request, context):
        in_flight.inc()
        t0 = time.perf_counter()
        code = "OK"
        try:
            return await behaviour(request, context)
        except BaseException:
            status = context.code()
            code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
            raise
        finally:
            latency.observe(time.perf_counter() - t0)
            REQUESTS.labels(service, method, code).inc()
            in_flight.dec()

    return observed
