"""gRPC client for model servers: one channel per target, least-outstanding spreading, retries.

Every call carries a deadline. UNAVAILABLE and DEADLINE_EXCEEDED are retried
with bounded exponential backoff, preferring another replica and cooling the
failing one down: the server is loading, draining or unreachable. Any other
status is final and becomes a per-question error, and so is an UNAVAILABLE
marked as an upstream failure (protos/wire.py): the server already retried the
remote API it depends on as often as its settings allow, and retrying here
would multiply the calls one question costs there. A RESOURCE_EXHAUSTED marked
as queue-full (protos/wire.py) is backpressure and is retried like UNAVAILABLE;
any other RESOURCE_EXHAUSTED (a request over a limit) is final.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field

import grpc

from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from protos.wire import ERROR_SOURCE_KEY, ERROR_SOURCE_QUEUE, ERROR_SOURCE_UPSTREAM
from serving.security import PLAIN, ClientSecurity, explain

MAX_MESSAGE_BYTES = 256 << 20
USAGE_FIELDS = ("requests", "retries", "prompt_tokens", "completion_tokens")
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# For dns:/// targets that name several pods (a headless Service): spread per call.
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_options() -> list[tuple[str, object]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.enable_retries", 0),  # retries are ours: bounded and replica-aware
    ]


class FingerprintMismatch(Exception):
    pass


class NoEndpoints(Exception):
    pass


class CallFailed(Exception):
    """A call that failed for good: its status name, message and tries are stored apart."""

    def __init__(self, code: grpc.StatusCode | None, message: str, attempts: int):
        self.status = code.name if code else "ERROR"
        super().__init__(f"{self.status}: {message} (after {attempts} attempt(s))")
        self.code = code
        self.message = message
        self.attempts = attempts


@dataclass
class Endpoint:
    target: str
    channel: grpc.aio.Channel
    stub: pb_grpc.ModelServiceStub
    info: pb.InfoResponse | None = None
    outstanding: int = 0
    cool_until: float = 0.0
    down: bool = False  # its last call failed as unreachable
    calls: int = 0
    ok: int = 0
    failures: int = 0
    status: str = "unknown"
    latencies_s: list[float] = field(default_factory=list, repr=False)  # of answered calls
    # What answered calls cost a remote API behind this replica (responses' `usage`).
    upstream: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USAGE_FIELDS, 0))

    def stats(self) -> dict:
        out = {"target": self.target, "status": self.status, "calls": self.calls, "ok": self.ok,
               "failures": self.failures, "latency_ms": percentiles_ms(self.latencies_s)}
        if any(self.upstream.values()):  # a remote model: its requests and tokens
            out["upstream"] = dict(self.upstream)
        return out

    def add_usage(self, resp) -> None:
        if "usage" in resp.DESCRIPTOR.fields_by_name and resp.HasField("usage"):
            for name in USAGE_FIELDS:
                self.upstream[name] += getattr(resp.usage, name)


def percentiles_ms(values_s: list[float]) -> dict[str, float]:
    """p50/p90/p99 (nearest rank) in milliseconds; {} when there is nothing to rank."""
    if not values_s:
        return {}
    ranked = sorted(values_s)

    def rank(q: float) -> float:
        return ranked[min(len(ranked) - 1, max(0, math.ceil(q * len(ranked)) - 1))]

    return {f"p{round(q * 100)}": round(rank(q) * 1000, 2) for q in (0.5, 0.9, 0.99)}


@dataclass
class RetryPolicy:
    attempts: int = 5
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    cool_down_s: float = 2.0

    def delay(self, attempt: int) -> float:
        d = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return d * (0.5 + random.random() / 2)


def is_upstream_failure(exc: grpc.aio.AioRpcError) -> bool:
    """The server gave up on a remote API after its own retries: not worth retrying here."""
    return any(key == ERROR_SOURCE_KEY and value == ERROR_SOURCE_UPSTREAM
               for key, value in exc.trailing_metadata() or ())


def is_queue_full(exc: grpc.aio.AioRpcError) -> bool:
    """The server's queue was full (backpressure): worth trying again after a pause."""
    return exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and any(
        key == ERROR_SOURCE_KEY and value == ERROR_SOURCE_QUEUE
        for key, value in exc.trailing_metadata() or ())


def worth_retrying(exc: grpc.aio.AioRpcError) -> bool:
    return (exc.code() in RETRYABLE and not is_upstream_failure(exc)) or is_queue_full(exc)


async def retrying(policy: RetryPolicy, once, label: str = ""):
    """Await `once()` until it answers, fails with a status not worth retrying, or the
    policy's attempts run out (with backoff between them); failures become CallFailed."""
    last: grpc.aio.AioRpcError | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            return await once()
        except grpc.aio.AioRpcError as exc:
            last = exc
            if not worth_retrying(exc):
                raise CallFailed(exc.code(), label + (exc.details() or ""), attempt) from None
        if attempt < policy.attempts:
            await asyncio.sleep(policy.delay(attempt))
    raise CallFailed(last.code() if last else None,
                     label + ((last.details() or "") if last else "no attempt"), policy.attempts)


async def ask_info(stub, request, timeout_s: float):
    """Info, waiting for the server to be ready and retrying while it loads (UNAVAILABLE).

    Returns (response, None) or (None, the error that says why not).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            return await stub.Info(request, timeout=max(0.5, deadline - time.monotonic()),
                                   wait_for_ready=True), None
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRYABLE:
                return None, exc
            await asyncio.sleep(0.2)
    # wait_for_ready hides why the channel never connected (a TLS handshake, a refused
    # connection) behind DEADLINE_EXCEEDED: one call that fails fast names the reason.
    try:
        return await stub.Info(request, timeout=2.0), None
    except grpc.aio.AioRpcError as exc:
        return None, exc


def unreachable(target: str, last: grpc.aio.AioRpcError | None,
                security: ClientSecurity = PLAIN) -> str:
    """Why a server did not answer Info: a clear TLS/auth line when that is the cause."""
    if last is None:
        return "unreachable (timeout)"
    clear = explain(target, last.code(), last.details() or "", security)
    return clear or f"unreachable ({last.code().name})"


class OutageWait:
    """Pause new calls while every replica is unreachable, for at most `limit_s` per outage.

    The first call that finds all replicas down probes them once a second and reports
    progress; every other call waits on the same outage. Once a wait runs out, calls fail
    at once until some call succeeds again. limit_s 0: no waiting."""

    def __init__(self, limit_s: float, report=None, every_s: float = 5.0):
        self.limit_s = limit_s
        self.report = report or (lambda line: None)
        self.every_s = every_s
        self._over: asyncio.Event | None = None
        self._back = True
        self._given_up = False
        self.outages = 0
        self.waited_s = 0.0

    async def paused(self) -> None:
        if self._over is not None:
            await self._over.wait()

    def answered(self) -> None:
        """A call succeeded: the next outage is waited out again."""
        self._given_up = False

    async def ride_out(self, probe) -> bool:
        """Wait until `probe()` names a replica that answers (True) or the limit passes."""
        if self.limit_s <= 0 or self._given_up:
            return False
        if self._over is not None:  # another call is already waiting this outage out
            await self._over.wait()
            return self._back
        self._over = asyncio.Event()
        self.outages += 1
        t0 = time.monotonic()
        self.report(f"all model replicas unreachable: pausing new work, waiting up to "
                    f"{self.limit_s:g}s for one to come back (--outage-wait-s)")
        back, last_report = None, t0
        try:
            while time.monotonic() - t0 < self.limit_s:
                back = await probe()
                if back:
                    break
                await asyncio.sleep(1.0)
                if time.monotonic() - last_report >= self.every_s:
                    last_report = time.monotonic()
                    self.report(f"still waiting for a model replica: {last_report - t0:.0f}s "
                                f"of {self.limit_s:g}s")
        finally:
            took = time.monotonic() - t0
            self.waited_s += took
            self._back = bool(back)
            self._given_up = not back
            self.report(f"{back} answers again after {took:.1f}s: resuming" if back else
                        f"no model replica came back within {self.limit_s:g}s: the remaining "
                        f"questions fail as unreachable")
            over, self._over = self._over, None
            over.set()
        return self._back


@dataclass
class ModelPool:
    """The model's replicas. `connect` checks them all, `call` runs one RPC with retries."""

    targets: list[str]
    deadline_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    endpoints: list[Endpoint] = field(default_factory=list)
    info: pb.InfoResponse | None = None
    security: ClientSecurity = PLAIN
    outage: OutageWait = field(default_factory=lambda: OutageWait(0.0))

    async def connect(self, info_timeout_s: float = 10.0) -> pb.InfoResponse:
        """Info on every target: unreachable ones are left out, differing fingerprints refused."""
        for t in self.targets:
            ch = self.security.aio_channel(t, channel_options())
            self.endpoints.append(Endpoint(t, ch, pb_grpc.ModelServiceStub(ch)))

        async def ask(ep: Endpoint) -> None:
            ep.info, last = await ask_info(ep.stub, pb.InfoRequest(), info_timeout_s)
            ep.status = "up" if ep.info is not None else unreachable(ep.target, last,
                                                                    self.security)

        await asyncio.gather(*(ask(ep) for ep in self.endpoints))
        up = [ep for ep in self.endpoints if ep.info is not None]
        if not up:
            detail = "; ".join(f"{ep.target}: {ep.status}" for ep in self.endpoints)
            raise NoEndpoints(f"no model server answered Info: {detail}")
        prints = {ep.info.fingerprint for ep in up}
        if len(prints) > 1:
            detail = ", ".join(f"{ep.target} -> {ep.info.name} ({ep.info.fingerprint})"
                               for ep in up)
            raise FingerprintMismatch(
                f"replicas serve different models (fingerprints differ): {detail}")
        self.info = up[0].info
        return self.info

    def live(self) -> list[Endpoint]:
        return [ep for ep in self.endpoints if ep.info is not None]

    def suggested_in_flight(self) -> int:
        return sum(max(1, ep.info.limits.suggested_in_flight or 4) for ep in self.live())

    def _choose(self, avoid: Endpoint | None) -> Endpoint:
        now = time.monotonic()
        live = self.live()
        warm = [ep for ep in live if ep.cool_until <= now and ep is not avoid]
        cands = warm or [ep for ep in live if ep is not avoid] or live
        return min(cands, key=lambda ep: (ep.cool_until > now, ep.outstanding, ep.calls))

    async def call(self, method: str, request, deadline_s: float | None = None):
        """One unary RPC on the least-loaded replica, retried (on another one) per the policy.

        While every replica is unreachable the call waits (OutageWait) instead of failing,
        then runs again with its full retries."""
        while True:
            await self.outage.paused()
            try:
                resp = await self._call_once(method, request, deadline_s)
            except CallFailed as exc:
                if exc.code != grpc.StatusCode.UNAVAILABLE or not self.all_down():
                    raise
                if not await self.outage.ride_out(self._probe):
                    raise
            else:
                self.outage.answered()
                return resp

    def all_down(self) -> bool:
        """Every live replica's last call failed as unreachable."""
        return all(ep.down for ep in self.live())

    async def _probe(self) -> str | None:
        """The first replica that answers Info again (its target), else None."""
        async def one(ep: Endpoint) -> str | None:
            try:
                await ep.stub.Info(pb.InfoRequest(), timeout=1.0)
            except grpc.aio.AioRpcError:
                return None
            ep.cool_until, ep.down = 0.0, False
            return ep.target

        back = [t for t in await asyncio.gather(*(one(ep) for ep in self.live())) if t]
        return back[0] if back else None

    async def _call_once(self, method: str, request, deadline_s: float | None):
        prev: list[Endpoint | None] = [None]

        async def once():
            ep = self._choose(prev[0])
            ep.outstanding += 1
            ep.calls += 1
            t0 = time.monotonic()
            try:
                resp = await getattr(ep.stub, method)(request, timeout=deadline_s or self.deadline_s)
                ep.ok += 1
                ep.down = False
                ep.latencies_s.append(time.monotonic() - t0)
                ep.add_usage(resp)
                return resp
            except grpc.aio.AioRpcError as exc:
                ep.failures += 1
                ep.down = exc.code() == grpc.StatusCode.UNAVAILABLE and not is_upstream_failure(exc)
                if ep.down:
                    ep.cool_until = time.monotonic() + self.retry.cool_down_s
                prev[0] = ep
                raise
            finally:
                ep.outstanding -= 1

        return await retrying(self.retry, once)

    async def close(self) -> None:
        await asyncio.gather(*(ep.channel.close() for ep in self.endpoints))

