"""The CLIP server's bounded queues and deadline drops, over a real server process.

The server runs open_clip's ViT-S-32 with seeded random weights (nothing is
downloaded), batches of one and one CPU thread, so one image costs ~20 ms on the
device on any CPU: slow enough that a request of 120 images keeps the queue full
for seconds, which makes the windows below wide rather than a race. The queue depth is read from
the server's /metrics, so each step starts only once the queue really is full.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time

import grpc
import numpy as np
import pytest
from PIL import Image

from evaluator.run.client import RetryPolicy
from evaluator.run.clip_client import ClipClient
from protos import clip_pb2 as cpb
from protos import clip_pb2_grpc as cpb_grpc
from protos import seedbench_pb2 as pb
from protos.wire import ERROR_SOURCE_KEY, ERROR_SOURCE_QUEUE
from tests.procs import metrics_port, server_process
from tests.test_metrics import scrape, value
from tests.waiting import in_background, wait_until, wait_until_async

pytestmark = pytest.mark.slow
MAX_QUEUE = 128
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def images(first: int, n: int) -> list[pb.Image]:
    """n distinct noise PNGs (distinct, so the server's embedding cache never answers)."""
    out = []
    for seed in range(first, first + n):
        arr = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        out.append(pb.Image(data=buf.getvalue()))
    return out


@pytest.fixture(scope="module")
def slow_clip():
    args = ["--model", "ViT-S-32", "--device", "cpu", "--max-batch", "1", "--max-wait-ms", "0",
            "--max-queue", str(MAX_QUEUE), "--metrics-port", "0", "--log-level", "WARNING"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # for the server process, which inherits it
        with server_process("clip_server.cli", args) as (target, proc), \
                grpc.insecure_channel(target) as ch:
            yield target, cpb_grpc.ClipServiceStub(ch), metrics_port(proc)


def queued(metrics: int) -> float:
    return value(scrape(metrics), "seedbench_queue_depth", batcher="images")


def refusals(metrics: int) -> float:
    """Queue-full refusals so far (0 before the first: the counter appears with it)."""
    return value(scrape(metrics), "seedbench_requests_total", 0.0, service="ClipService",
                 method="EmbedImages", code="RESOURCE_EXHAUSTED")


def embedded(stub) -> int:
    """Images the server has embedded so far (trailing metadata of a text call)."""
    _, call = stub.EmbedTexts.with_call(cpb.EmbedTextsRequest(texts=["probe"]), timeout=60)
    return int(dict(call.trailing_metadata())["images-embedded"])


def test_info_reports_the_queue_bound(slow_clip):
    _, stub, _ = slow_clip
    assert stub.Info(cpb.ClipInfoRequest(), timeout=30).details["max_queue"] == str(MAX_QUEUE)


def test_queue_full_refused_at_once_and_late_requests_dropped_unrun(slow_clip):
    _, stub, metrics = slow_clip
    before = embedded(stub)
    # A: 120 images, alone on an empty queue: admitted although one request's worth.
    big, big_out = in_background(stub.EmbedImages,
                                 cpb.EmbedImagesRequest(images=images(0, 120)), timeout=120)
    wait_until(lambda: queued(metrics) >= 100, 60, what="the first request queued")
    # B: 100 more images do not fit beside the ~100 waiting: refused at once, as queue-full.
    with pytest.raises(grpc.RpcError) as err:
        stub.EmbedImages(cpb.EmbedImagesRequest(images=images(1000, 100)), timeout=60)
    assert err.value.code() == EXHAUSTED
    assert "queue full" in err.value.details() and f"max_queue {MAX_QUEUE}" in err.value.details()
    assert (ERROR_SOURCE_KEY, ERROR_SOURCE_QUEUE) in err.value.trailing_metadata()
    # Backpressure: refused while A still waits, not once the queue drained (and never run:
    # the embedded count below).
    assert queued(metrics) > 3 and "result" not in big_out
    # C: 3 images fit, but the client gives up after 0.5 s, long before their turn.
    with pytest.raises(grpc.RpcError) as late:
        stub.EmbedImages(cpb.EmbedImagesRequest(images=images(2000, 3)), timeout=0.5)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert queued(metrics) > 3  # A was still waiting when C gave up
    big.join(120)
    assert len(big_out["result"].embeddings) == 120
    wait_until(lambda: queued(metrics) == 0, 60, what="C left the queue")
    # Only A's images were embedded: B was refused whole, C was dropped unrun (the count comes
    # from a text call, which queues on the device behind any image batch).
    assert embedded(stub) - before == 120
    # The server still answers.
    assert len(stub.EmbedImages(cpb.EmbedImagesRequest(images=images(3000, 1)),
                                timeout=30).embeddings) == 1


def test_the_evaluator_clip_client_retries_queue_full_until_answered(slow_clip):
    target, stub, metrics = slow_clip
    refused_before = refusals(metrics)
    async def main():
        client = ClipClient(target, deadline_s=120,
                            retry=RetryPolicy(attempts=40, backoff_s=0.1, max_backoff_s=0.5))
        try:
            await client.connect()
            # 100 + 40 images against a queue of 128: whichever comes second is refused
            # until the device has taken a dozen of the first one's images.
            return client, await asyncio.gather(
                *(client.embed_images(images(5000 + 1000 * k, n)) for k, n in enumerate((100, 40))))
        finally:
            await client.close()

    client, results = asyncio.run(main())
    assert [len(r) for r in results] == [100, 40]
    assert refusals(metrics) > refused_before  # the queue really was full ...
    assert client.failures > 0 and client.ok == 2  # ... and the client retried those calls


def test_the_servicer_hands_the_client_deadline_to_the_batcher():
    """In process, so the batcher's own drop is seen (over gRPC the server also cancels a
    call whose deadline passed, which hides which of the two kept the work from running)."""
    from clip_server.embedder import LRUCache
    from clip_server.servicer import ClipServicer

    started, gate = threading.Event(), threading.Event()
    ran: list = []

    class HeldEmbedder:  # what the servicer uses of ClipEmbedder; holds the device on a gate
        cache = LRUCache(0)

        def embed_texts(self, texts):
            started.set()
            gate.wait(10)
            ran.extend(texts)
            return [[1.0, 0.0] for _ in texts]

        embed_pixels = embed_texts

    class Context:
        def __init__(self, remaining):
            self.remaining = remaining

        def time_remaining(self):
            return self.remaining

        def set_trailing_metadata(self, md):
            pass

        async def abort(self, code, details, metadata=()):
            raise grpc.RpcError(code, details)

    async def main():
        servicer = ClipServicer(max_batch=1, max_wait_ms=0)
        servicer.attach(HeldEmbedder())
        busy = asyncio.ensure_future(
            servicer.EmbedTexts(cpb.EmbedTextsRequest(texts=["busy"]), Context(None)))
        await wait_until_async(started.is_set, what="'busy' holds the device")
        late = asyncio.ensure_future(
            servicer.EmbedTexts(cpb.EmbedTextsRequest(texts=["late"]), Context(0.05)))
        await wait_until_async(lambda: servicer.text_batcher.queue_depth == 1, what="'late' queued")
        passed = time.monotonic() + 0.05  # its deadline was set before it queued: passed by then
        await wait_until_async(lambda: time.monotonic() > passed, what="'late''s deadline passed")
        gate.set()
        with pytest.raises(grpc.RpcError) as err:
            await late
        await busy
        return err.value.args, servicer.text_batcher.dropped

    (code, details), dropped = asyncio.run(main())
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "not run" in details
    assert dropped == 1 and ran == ["busy"]


@pytest.mark.parametrize("module", ["clip_server.cli", "model_server.cli"])
def test_max_queue_below_one_is_refused_in_one_line(module, capsys):
    import importlib

    cli = importlib.import_module(module)
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(["serve", "--model", "tiny", "--max-queue", "0"])
    assert exit_.value.code == 2
    assert "argument --max-queue: 0 is not >= 1" in capsys.readouterr().err
