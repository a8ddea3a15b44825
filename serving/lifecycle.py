"""Server lifecycle shared by the model and CLIP servers.

Health starts NOT_SERVING (grpcio's HealthServicer would otherwise answer
SERVING for "" at once), turns SERVING only once the model is loaded, and goes
back to NOT_SERVING on SIGTERM/SIGINT while in-flight calls drain.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from serving.batching import settle

log = logging.getLogger(__name__)
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


def setup_process(log_level: str) -> None:
    """What every server process sets first: offline hubs, quiet tokenizers, log format."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """A server CLI's main: parse, set the process up, run the chosen subcommand."""
    args = parser.parse_args(argv)
    setup_process(args.log_level)
    return args.func(args)


def server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


def _load_in_daemon_thread(load: Callable[[], Any]) -> asyncio.Future:
    """Run a slow load in a daemon thread so a SIGTERM during loading can still exit.

    The future's result is (loaded object, seconds it took)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def run():
        t0 = time.monotonic()
        try:
            result = load()
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop
            loop.call_soon_threadsafe(settle, fut, None, exc)
        else:
            loop.call_soon_threadsafe(settle, fut, (result, time.monotonic() - t0), None)

    threading.Thread(target=run, name="model-load", daemon=True).start()
    return fut


async def run_server(
    *, host: str, port: int, service_names: list[str], add_servicer: Callable[[grpc.aio.Server], None],
    load: Callable[[], Any], on_loaded: Callable[[Any], None], max_message_bytes: int,
    grace_s: float = 30.0, ready_line: str = "", metrics_port: int | None = None,
    batchers: Callable[[], list[tuple[str, Any]]] = list,
) -> int:
    """Serve until SIGTERM/SIGINT. metrics_port: Prometheus /metrics there (0: any free
    port, None: none); batchers: the (name, MicroBatcher) pairs on_loaded made, to watch."""
    metrics = None
    if metrics_port is not None:
        from serving import metrics  # prometheus_client: a server dependency only

        try:
            bound_metrics = metrics.serve(metrics_port, host)
        except OSError as exc:
            log.error("cannot serve metrics on %s:%s: %s", host, metrics_port, exc)
            return 2
        print(f"metrics on {host}:{bound_metrics}/metrics", flush=True)
    interceptors = [metrics.CallMetrics()] if metrics else []
    server = grpc.aio.server(options=server_options(max_message_bytes), interceptors=interceptors)
    health_servicer = health.aio.HealthServicer()
    for name in ["", *service_names]:
        await health_servicer.set(name, NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    add_servicer(server)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        log.error("cannot bind %s:%s", host, port)
        return 2
    await server.start()
    print(f"listening on {host}:{bound}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    load_fut = _load_in_daemon_thread(load)
    stop_wait = asyncio.ensure_future(stop.wait())
    await asyncio.wait({load_fut, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():
        try:
            loaded, load_s = load_fut.result()
            on_loaded(loaded)
            if metrics:
                metrics.model_loaded(load_s)
                metrics.watch_batchers(batchers())
        except (ValueError, OSError) as exc:  # a setting or file the operator must fix: one line
            log.error("model failed to load: %s", exc)
            await server.stop(0)
            return 1
        except Exception:
            log.exception("model failed to load")
            await server.stop(0)
            return 1
        for name in ["", *service_names]:
            await health_servicer.set(name, SERVING)
        log.info("model loaded; serving")
        if ready_line:
            print(ready_line, flush=True)
        await stop.wait()
    log.info("draining: finishing in-flight calls (grace %.0fs)", grace_s)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)
    log.info("stopped")
    return 0
