"""The ClipService servicer: validate, consult the cache, batch, map errors.

Requests are split into single items (one image or one text) and fed to a
micro-batcher, so images from concurrent requests share one device batch. The
batch queues are bounded (max_queue items each): a request whose items do not
fit is refused at once as queue-full (backpressure, the evaluator retries it),
and items whose client deadline passed while they waited are dropped unrun.
Images are decoded and preprocessed off the event loop and only on a cache
miss; the cache key is the image sha256 (computed when the client sent none),
so an option image shared by many questions is embedded once.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

from protos import clip_pb2 as cpb
from protos import clip_pb2_grpc as cpb_grpc
from serving.batching import MicroBatcher
from serving.device import DeviceThread, deadline_from
from serving.errors import InvalidRequest, NotReady, TooLarge, grpc_errors
from serving.images import decode_image

if TYPE_CHECKING:  # the embedder pulls in torch; the server binds its port before that
    from clip_server.embedder import ClipEmbedder


class ClipServicer(cpb_grpc.ClipServiceServicer):
    def __init__(self, max_batch: int = 32, max_wait_ms: float = 5.0, max_items: int = 256,
                 max_message_bytes: int = 64 << 20, max_queue: int = 1024):
        self.max_batch = max_batch
        self.max_queue = max_queue  # images (texts) waiting for a device batch
        self.max_wait_ms = max_wait_ms
        self.max_items = max_items
        self.max_message_bytes = max_message_bytes
        self.device = DeviceThread()  # watched: shutdown abandons a busy device (exit 3)
        self.embedder: ClipEmbedder | None = None
        self.image_batcher: MicroBatcher | None = None
        self.text_batcher: MicroBatcher | None = None

    def attach(self, embedder: ClipEmbedder) -> None:
        self.image_batcher = MicroBatcher(embedder.embed_pixels, self.device, self.max_batch,
                                          self.max_wait_ms, max_queue=self.max_queue)
        self.text_batcher = MicroBatcher(embedder.embed_texts, self.device, self.max_batch,
                                         self.max_wait_ms, max_queue=self.max_queue)
        self.embedder = embedder

    def _ready(self) -> ClipEmbedder:
        if self.embedder is None:
            raise NotReady("model is still loading")
        return self.embedder

    def _check_count(self, field: str, n: int) -> None:
        if n == 0:
            raise InvalidRequest(field, "is empty; send at least one item")
        if n > self.max_items:
            raise TooLarge(f"{field}: {n} items, at most {self.max_items} per request")

    def info_message(self) -> cpb.ClipInfoResponse:
        """Static settings only: results record Info, so it must not change while serving."""
        e = self._ready()
        details = {
            "device": str(e.device), "image_size": str(e.image_size),
            "max_batch": str(self.max_batch), "max_wait_ms": str(self.max_wait_ms),
            "max_items": str(self.max_items), "max_message_bytes": str(self.max_message_bytes),
            "max_queue": str(self.max_queue),
            "cache_capacity": str(e.cache.capacity), "cache_key": "sha256 of the image bytes",
            "normalised": "L2", "counters": "trailing metadata of every Embed call",
        }
        return cpb.ClipInfoResponse(name=e.model_name, checkpoint=e.checkpoint,
                                    fingerprint=e.fingerprint, embed_dim=e.embed_dim,
                                    details=details)

    def counters(self) -> tuple[tuple[str, str], ...]:
        """Server totals so far, sent as trailing metadata (cache and batching behaviour)."""
        e = self.embedder
        return (
            ("cache-hits", str(e.cache.hits)), ("cache-misses", str(e.cache.misses)),
            ("cache-entries", str(len(e.cache))),
            ("image-batches", str(self.image_batcher.batches_run)),
            ("images-embedded", str(self.image_batcher.items_run)),
            ("text-batches", str(self.text_batcher.batches_run)),
            ("texts-embedded", str(self.text_batcher.items_run)),
        )

    @grpc_errors
    async def Info(self, request, context):
        return self.info_message()

    @grpc_errors
    async def EmbedImages(self, request, context):
        embedder = self._ready()
        self._check_count("images", len(request.images))
        keys = []
        for i, im in enumerate(request.images):
            if not im.data:
                raise InvalidRequest(f"images[{i}].data", "is empty")
            digest = hashlib.sha256(im.data).hexdigest()
            if im.sha256 and im.sha256.lower() != digest:
                raise InvalidRequest(f"images[{i}].sha256", "does not match the image bytes")
            keys.append(digest)
        vectors: list[list[float] | None] = [embedder.cache.get(k) for k in keys]
        missing = [i for i, v in enumerate(vectors) if v is None]

        def prepare():
            return [embedder.prepare(decode_image(request.images[i].data, f"images[{i}]"))
                    for i in missing]

        if missing:
            self.image_batcher.check_room(len(missing), "images")  # before decoding them
            pixels = await asyncio.to_thread(prepare)
            fresh = await self.image_batcher.submit_all(
                pixels, deadline_from(context.time_remaining()), unit="images")
            for i, vec in zip(missing, fresh, strict=True):
                vectors[i] = vec
                embedder.cache.put(keys[i], vec)
        context.set_trailing_metadata(self.counters())
        return cpb.EmbedResponse(embeddings=[cpb.Embedding(values=v) for v in vectors])

    @grpc_errors
    async def EmbedTexts(self, request, context):
        self._ready()
        self._check_count("texts", len(request.texts))
        for i, t in enumerate(request.texts):
            if not t.strip():
                raise InvalidRequest(f"texts[{i}]", "is empty")
        vectors = await self.text_batcher.submit_all(
            list(request.texts), deadline_from(context.time_remaining()), unit="texts")
        context.set_trailing_metadata(self.counters())
        return cpb.EmbedResponse(embeddings=[cpb.Embedding(values=v) for v in vectors])
