"""Async client for the CLIP server (seedbench.v1.ClipService), and cosine similarity.

One channel to one target (a `dns:///` target naming several CLIP pods is
balanced per call, as for model servers). Every call has a deadline;
UNAVAILABLE, DEADLINE_EXCEEDED and a queue-full RESOURCE_EXHAUSTED (the
server's backpressure) are retried with the model pool's backoff policy
(`evaluator.run.client.retrying`), any other status is final and becomes a
per-question error (`CallFailed`). Pure Python: no torch, no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from evaluator.run.client import CallFailed, RetryPolicy, ask_info, channel_options, retrying
from protos import clip_pb2 as cpb
from protos import clip_pb2_grpc as cpb_grpc
from protos import seedbench_pb2 as pb
from serving.security import PLAIN, ClientSecurity, explain


class ClipUnavailable(Exception):
    """The CLIP server did not answer Info: L3 cannot be scored."""


def clip_record(info: cpb.ClipInfoResponse) -> dict:
    """What results record of the CLIP model (two runs compare only if fingerprints match)."""
    return {"name": info.name, "checkpoint": info.checkpoint, "fingerprint": info.fingerprint}


@dataclass
class ClipClient:
    target: str
    deadline_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    info: cpb.ClipInfoResponse | None = None
    calls: int = 0
    ok: int = 0
    failures: int = 0
    security: ClientSecurity = PLAIN

    def __post_init__(self) -> None:
        self.channel = self.security.aio_channel(self.target, channel_options())
        self.stub = cpb_grpc.ClipServiceStub(self.channel)

    async def connect(self, info_timeout_s: float = 10.0) -> cpb.ClipInfoResponse:
        """Ask Info (waiting for the server to be ready, up to the timeout)."""
        self.info, last = await ask_info(self.stub, cpb.ClipInfoRequest(), info_timeout_s)
        if self.info is not None:
            return self.info
        clear = last and explain(self.target, last.code(), last.details() or "", self.security)
        why = f"{last.code().name}: {last.details()}" if last else "timeout"
        raise ClipUnavailable(f"CLIP server {clear}" if clear else
                              f"CLIP server {self.target} did not answer Info ({why})")

    async def _call(self, method: str, request):
        async def once():
            self.calls += 1
            try:
                resp = await getattr(self.stub, method)(request, timeout=self.deadline_s)
            except grpc.aio.AioRpcError:
                self.failures += 1
                raise
            self.ok += 1
            return resp

        return await retrying(self.retry, once, label=f"CLIP {method}: ")

    async def embed_images(self, images: Sequence[pb.Image]) -> list[list[float]]:
        """One embedding per image, in order (the server caches them by sha256)."""
        resp = await self._call("EmbedImages", cpb.EmbedImagesRequest(images=list(images)))
        if len(resp.embeddings) != len(images):
            raise CallFailed(None, f"CLIP EmbedImages returned {len(resp.embeddings)} "
                                   f"embeddings for {len(images)} images", 1)
        return [list(e.values) for e in resp.embeddings]

    def stats(self) -> dict:
        return {"target": self.target, "calls": self.calls, "ok": self.ok,
                "failures": self.failures}

    async def close(self) -> None:
        await self.channel.close()


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity. Server embeddings are unit-norm (a dot product), normalised anyway."""
    if len(a) != len(b):
        raise ValueError(f"embeddings differ in size: {len(a)} vs {len(b)}")
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(math.fsum(x * x for x in a))
    nb = math.sqrt(math.fsum(y * y for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return dot / (na * nb)
