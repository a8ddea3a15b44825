"""The ModelService servicer: validate, delegate, map errors. Nothing model-specific."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib

from model_server import requests
from model_server.backends.base import Backend, BackendInfo, Unparsed, Usage, unmeter
from protos import seedbench_pb2 as pb
from protos import seedbench_pb2_grpc as pb_grpc
from serving.batching import MicroBatcher
from serving.device import DeviceThread, deadline_from
from serving.errors import NotReady, grpc_errors


class ModelServicer(pb_grpc.ModelServiceServicer):
    def __init__(self, max_batch: int = 8, max_wait_ms: float = 5.0,
                 max_message_bytes: int = 64 << 20, in_flight_per_batch: int = 2,
                 max_queue: int = 1024, max_new_tokens: int = 1024):
        self.max_batch = max_batch
        self.max_queue = max_queue  # requests waiting for the device, per queue
        self.max_new_tokens = max_new_tokens  # Generate's cap
        self.max_wait_ms = max_wait_ms
        self.max_message_bytes = max_message_bytes
        self.in_flight_per_batch = in_flight_per_batch
        # One thread owns the device: batches, generation and image generation queue on it.
        self.device = DeviceThread()
        # Backends that are not device-bound (remote APIs) generate concurrently here.
        self.io = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="io")
        self.backend: Backend | None = None
        self.info: BackendInfo | None = None
        self.batcher: MicroBatcher | None = None
        self.generate_batcher: MicroBatcher | None = None  # device-bound backends only
        self.image_batcher: MicroBatcher | None = None

    def attach(self, backend: Backend) -> None:
        self.info = backend.info()
        self.batcher = self._batcher(backend.score)
        if backend.device_bound:  # generation batched like Score, on the same device thread
            self.generate_batcher = self._batcher(backend.generate_batch)
            self.image_batcher = self._batcher(backend.generate_image_batch)
        self.backend = backend

    def _batcher(self, fn) -> MicroBatcher:
        return MicroBatcher(fn, self.device, self.max_batch, self.max_wait_ms,
                            max_queue=self.max_queue)

    def batchers(self) -> list[tuple[str, MicroBatcher]]:
        """The (name, batcher) pairs metrics watch."""
        named = [("score", self.batcher), ("generate", self.generate_batcher),
                 ("generate_image", self.image_batcher)]
        return [(name, b) for name, b in named if b is not None]

    def _ready(self) -> Backend:
        if self.backend is None:
            raise NotReady("model is still loading")
        return self.backend

    def info_message(self) -> pb.InfoResponse:
        info = self.info
        return pb.InfoResponse(
            name=info.name, backend=info.backend, fingerprint=info.fingerprint,
            capabilities=pb.Capabilities(score=info.can_score, generate=info.can_generate,
                                         generate_image=info.can_generate_image,
                                         score_features=info.score_features.message()),
            limits=pb.Limits(
                max_images=info.max_images, max_message_bytes=self.max_message_bytes,
                max_batch_size=self.max_batch, max_wait_ms=int(self.max_wait_ms),
                suggested_in_flight=max(2, self.max_batch * self.in_flight_per_batch),
                context_tokens=info.context_tokens, max_option_tokens=info.max_option_tokens,
            ),
            details=info.details,
        )

    def _admitted(self, task):
        """The backend's admission check (model limits) before the task may queue."""
        self.backend.admit(task)
        return task

    def _prepared_task(self, request):
        return self.backend.prepare(self._admitted(requests.score_task(request)))

    def _task(self, make, prepare, request, deadline: float | None):
        """In a worker thread: the request's task (images decoded) with the client's
        deadline, admitted, then prepared."""
        return prepare(self._admitted(dataclasses.replace(make(request), deadline=deadline)))

    async def _generated(self, batcher: MicroBatcher | None, method, make, prepare, request,
                         context):
        """A generation: computed in a device batch (bounded queue, dropped once the
        client's deadline has passed, the deadline handed to the backend to stop at) or,
        for backends that compute nothing locally (no batcher), by `method` in the io
        threads, concurrently (the backend bounds its own concurrency)."""
        deadline = deadline_from(context.time_remaining())
        if batcher is not None:
            batcher.check_room(1, "requests")  # before the work of preparing it
        task = await asyncio.to_thread(self._task, make, prepare, request, deadline)
        if batcher is None:
            return unmeter(await asyncio.get_running_loop().run_in_executor(self.io, method, task))
        return unmeter(await batcher.submit(task, deadline))

    @grpc_errors
    async def Info(self, request, context):
        self._ready()
        return self.info_message()

    @grpc_errors
    async def Score(self, request, context):
        self._ready()
        requests.check_score(request, self.info)
        if self.backend.needs_pixels:
            # Decoding and the backend's CPU-side preparation run in worker threads,
            # overlapping the device thread's work on earlier batches.
            task = await asyncio.to_thread(self._prepared_task, request)
        else:  # signature checks only: cheap enough for the event loop
            task = self.backend.prepare(self._admitted(requests.score_task(request, decode=False)))
        deadline = deadline_from(context.time_remaining())
        scores, usage = unmeter(await self.batcher.submit(task, deadline))
        if isinstance(scores, Unparsed):
            return pb.ScoreResponse(request_id=request.request_id, unparsed=True,
                                    unparsed_reason=scores.reason, usage=usage_message(usage))
        return pb.ScoreResponse(
            request_id=request.request_id,
            scores=[pb.OptionScore(logprob_sum=s.logprob_sum, num_tokens=s.num_tokens) for s in scores],
            usage=usage_message(usage),
        )

    @grpc_errors
    async def Generate(self, request, context):
        backend = self._ready()
        requests.check_prompt(request.prompt, self.info.max_images)
        requests.check_max_new_tokens(request.max_new_tokens, self.max_new_tokens)
        text, usage = await self._generated(self.generate_batcher, backend.generate,
                                            requests.generate_task, backend.prepare_generate,
                                            request, context)
        return pb.GenerateResponse(request_id=request.request_id, text=text,
                                   usage=usage_message(usage))

    @grpc_errors
    async def GenerateImage(self, request, context):
        backend = self._ready()
        requests.check_prompt(request.prompt, self.info.max_images)
        requests.check_max_new_tokens(request.max_new_tokens, self.max_new_tokens)
        out, usage = await self._generated(self.image_batcher, backend.generate_image,
                                           requests.generate_image_task, lambda t: t, request,
                                           context)
        image = pb.Image(data=out.png, sha256=hashlib.sha256(out.png).hexdigest())
        return pb.GenerateImageResponse(request_id=request.request_id, image=image, text=out.text,
                                        usage=usage_message(usage))


def usage_message(usage: Usage | None) -> pb.Usage | None:
    if usage is None:
        return None
    return pb.Usage(requests=usage.requests, retries=usage.retries,
                    prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
