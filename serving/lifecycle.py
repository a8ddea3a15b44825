"""Server lifecycle shared by the model and CLIP servers.

Health starts NOT_SERVING (grpcio's HealthServicer would otherwise answer
SERVING for "" at once), turns SERVING only once the model is loaded, and goes
back to NOT_SERVING on SIGTERM/SIGINT while in-flight calls drain, and while
the device thread has been stuck on one job for more than `stuck_after_s` (so a
liveness probe restarts the pod).

Shutdown: the first SIGTERM/SIGINT drains for `grace_s`; what is still running
then is cancelled and the process exits with one of serving.shutdown's codes.
Exits 3 and 4 leave with os._exit: a busy device thread cannot be interrupted,
and waiting for it is what kept a stopped server running.

Importing this module applies serving.environment's defaults before grpc (which
reads GRPC_VERBOSITY once, on import) and, later, torch are imported.
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
from pathlib import Path
from typing import Any

from serving import environment

environment.apply()

import grpc  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402

from serving import arg_types, reflection  # noqa: E402
from serving.batching import settle  # noqa: E402
from serving.security import SecurityError, ServerSecurity  # noqa: E402
from serving.shutdown import (  # noqa: E402
    DRAIN_GRACE_S,
    EXIT_DRAINED,
    EXIT_GRACE_EXPIRED,
    EXIT_LOAD_FAILED,
    EXIT_SECOND_SIGNAL,
    EXIT_SETUP,
)

log = logging.getLogger(__name__)
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


class Undecodable:
    """Stands in for a request whose bytes are not the method's message."""

    def __init__(self, error: Exception):
        self.error = error


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # noqa: BLE001 - answered as INVALID_ARGUMENT below
            return Undecodable(exc)

    return decode


class DecodeErrors(grpc.aio.ServerInterceptor):
    """Undecodable request bytes answer INVALID_ARGUMENT naming the method, where grpcio
    would answer a bare UNKNOWN/INTERNAL from its own deserializer."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        behaviour, method = handler.unary_unary, details.method

        async def checked(request, context):
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"request: the bytes sent to {method} are not a valid "
                                    "request message (protobuf decoding failed)")
            return await behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked, request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer)


def setup_logging(log_level: str) -> None:
    """Every server process logs to stderr in one format."""
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """A server CLI's main: parse (every flag checked: a bad one exits 2 before anything
    loads), set up logging, run the chosen subcommand."""
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    return args.func(args)


def add_log_level_arg(parser: argparse.ArgumentParser, default: str = "INFO") -> None:
    parser.add_argument("--log-level", type=arg_types.log_level, default=default,
                        help=f"{', '.join(arg_types.LOG_LEVELS)} (default: {default})")


def add_listen_args(parser: argparse.ArgumentParser, port: int) -> None:
    """--host and --port of a server."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=arg_types.port, default=port,
                        help=f"default {port}; 0 picks a free port (printed)")


def add_batching_args(parser: argparse.ArgumentParser, max_batch: int, unit: str) -> None:
    """--max-batch and --max-wait-ms: the micro-batcher's size and window."""
    parser.add_argument("--max-batch", type=arg_types.positive_int, default=max_batch,
                        help=f"{unit} per device batch (default {max_batch})")
    parser.add_argument("--max-wait-ms", type=arg_types.non_negative_float, default=5.0,
                        help="batching window in ms (default 5)")


def add_server_process_args(parser: argparse.ArgumentParser) -> None:
    """The flags every server process takes (message size, shutdown, watchdog, metrics,
    TLS and token auth), declared once for the model and CLIP servers."""
    from serving import security

    parser.add_argument("--max-message-mb", type=arg_types.message_mb, default=64.0,
                        help="largest request accepted (MiB, below 2048)")
    parser.add_argument("--max-queue", type=arg_types.positive_int, default=1024,
                        help="requests (CLIP server: images or texts) waiting per queue before "
                        "RESOURCE_EXHAUSTED at once (backpressure: the evaluator retries)")
    parser.add_argument("--grace-s", type=arg_types.non_negative_float, default=DRAIN_GRACE_S,
                        help=f"drain time on SIGTERM (default {DRAIN_GRACE_S:g}); then what is "
                        "left is cancelled (exit 3)")
    parser.add_argument("--stuck-after-s", type=arg_types.non_negative_float, default=600.0,
                        help="health NOT_SERVING once the device has been on one job this long "
                        "(0: never)")
    parser.add_argument("--metrics-port", type=arg_types.port, default=None,
                        help="serve Prometheus /metrics on this port (0: a free one; default: none)")
    security.add_server_args(parser)


def server_security(args: argparse.Namespace) -> ServerSecurity:
    """--tls-* and --auth-token-file as checked material; unusable files exit 2 with one line,
    before anything loads. (Read at start, not while parsing: the manifest checks parse
    the servers' args on a machine without the pods' files.)"""
    try:
        return ServerSecurity.from_args(args)
    except SecurityError as exc:
        print(f"{Path(sys.argv[0]).name}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_SETUP) from None


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
    grace_s: float = DRAIN_GRACE_S, ready_line: str = "", metrics_port: int | None = None,
    batchers: Callable[[], list[tuple[str, Any]]] = list,
    busy_s: Callable[[], float] = lambda: 0.0, stuck_after_s: float = 0.0,
    security: ServerSecurity | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT. metrics_port: Prometheus /metrics there (0: any free
    port, None: none); batchers: the (name, MicroBatcher) pairs on_loaded made, to watch;
    busy_s: how long the device thread has been on its current job (0: idle), health
    NOT_SERVING past stuck_after_s (0: never); security: TLS / mutual TLS / token auth
    (serving.security), plaintext when None."""
    security = security or ServerSecurity()
    metrics = None
    if metrics_port is not None:
        from serving import metrics  # prometheus_client: a server dependency only

        try:
            bound_metrics = metrics.serve(metrics_port, host)
        except OSError as exc:
            log.error("cannot serve metrics on %s:%s: %s", host, metrics_port, exc)
            return EXIT_SETUP
        print(f"metrics on {host}:{bound_metrics}/metrics", flush=True)
    # Token auth innermost, so refused (UNAUTHENTICATED) calls are counted too.
    interceptors = [DecodeErrors(), *([metrics.CallMetrics()] if metrics else []),
                    *security.interceptors()]
    server = grpc.aio.server(options=server_options(max_message_bytes), interceptors=interceptors)
    health_servicer = health.aio.HealthServicer()
    for name in ["", *service_names]:
        await health_servicer.set(name, NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    add_servicer(server)
    reflection.enable(server, [*service_names, health.SERVICE_NAME])
    bound = security.bind(server, f"{host}:{port}")
    if not bound:
        log.error("cannot bind %s:%s", host, port)
        return EXIT_SETUP
    await server.start()
    print(f"listening on {host}:{bound} ({security.describe()})", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            _exit_now(EXIT_SECOND_SIGNAL, f"second {signal.Signals(signum).name} during the "
                      "drain: exiting at once")
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

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
            return EXIT_LOAD_FAILED
        except Exception:
            log.exception("model failed to load")
            await server.stop(0)
            return EXIT_LOAD_FAILED
        for name in ["", *service_names]:
            await health_servicer.set(name, SERVING)
        log.info("model loaded; serving")
        if ready_line:
            print(ready_line, flush=True)
        watchdog = asyncio.ensure_future(
            _watch_device(health_servicer, ["", *service_names], busy_s, stuck_after_s, stop))
        await stop.wait()
        watchdog.cancel()
    log.info("draining: finishing in-flight calls (grace %.0fs)", grace_s)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)  # cancels the calls still running when the grace runs out
    if busy_s() > 0:
        _exit_now(EXIT_GRACE_EXPIRED, f"grace of {grace_s:g}s ran out with the device thread "
                  f"busy for {busy_s():.1f}s: its work is abandoned")
    log.info("stopped")
    return EXIT_DRAINED


def _exit_now(code: int, why: str) -> None:
    """Leave without waiting for the device thread (it cannot be interrupted)."""
    log.warning("%s (exit %d)", why, code)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(code)


async def _watch_device(health_servicer, names: list[str], busy_s: Callable[[], float],
                        stuck_after_s: float, stop: asyncio.Event) -> None:
    """NOT_SERVING while the device thread is stuck on one job past stuck_after_s; SERVING
    again once it moves on (a liveness probe restarts a pod that stays stuck)."""
    if stuck_after_s <= 0:
        return
    stuck = False
    while not stop.is_set():
        await asyncio.sleep(min(1.0, stuck_after_s / 4))
        busy = busy_s()
        if busy > stuck_after_s and not stuck and not stop.is_set():
            log.error("device thread stuck on one job for %.0fs (> stuck_after_s %gs): "
                      "health NOT_SERVING", busy, stuck_after_s)
            stuck = True
            for name in names:
                await health_servicer.set(name, NOT_SERVING)
        elif busy <= stuck_after_s and stuck and not stop.is_set():
            log.info("device thread moved on: health SERVING again")
            stuck = False
            for name in names:
                await health_servicer.set(name, SERVING)
