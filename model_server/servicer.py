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
        self.device = DeviceThread(max_queue)
        # Backends that are not device-bound (remote APIs) generate concurrently here.
        self.io = concurrent.futures.ThreadPoolExecutor(64, thread_name_prefix="io")
        self.backend: Backend | None = None
        self.info: BackendInfo | None = None
        self.batcher: MicroBatcher | None = None
        self.generate_batcher: MicroBatcher | None = None  # device-bound backends only

    def attach(self, backend: Backend) -> None:
        self.info = backend.info()
        self.batcher = self._batcher(backend.score)
        if backend.device_bound:  # Generate batched like Score, on the same device thread
            self.generate_batcher = self._batcher(backend.generate_batch)
        self.generator = self.device if backend.device_bound else self.io
        self.backend = backend

    def _batcher(self, fn) -> MicroBatcher:
        return MicroBatcher(fn, self.device, self.max_batch, self.max_wait_ms,
                            max_queue=self.max_queue)

    def batchers(self) -> list[tuple[str, MicroBatcher]]:
        """The (name, batcher) pairs metrics watch."""
        named = [("score", self.batcher), ("generate", self.generate_batcher)]
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
                                         generate_image=info.can_generate_image),
            limits=pb.Limits(
                max_images=info.max_images, max_message_bytes=self.max_message_bytes,
                max_batch_size=self.max_batch, max_wait_ms=int(self.max_wait_ms),
                suggested_in_flight=max(2, self.max_batch * self.in_flight_per_batch),
            ),
            details=info.details,
        )

    def _admitted(self, task):
        """The backend's admission check (model limits) before the task may queue."""
        self.backend.admit(task)
        return task

    def _prepared_task(self, request):
        return self.backend.prepare(self._admitted(requests.score_task(request)))

    def _prepared_generation(self, request, deadline: float | None):
        task = dataclasses.replace(requests.generate_task(request), deadline=deadline)
        return self.backend.prepare_generate(self._admitted(task))

    async def _run(self, method, task, context):
        """One generation call (images; text where it is not batched): on the device thread
        (bounded queue, dropped once the client's deadline has passed, the deadline
        handed to the backend to stop at) or, for backends that compute nothing
        locally, in the io threads."""
        deadline = deadline_from(context.time_remaining())
        task = dataclasses.replace(task, deadline=deadline)
        loop = asyncio.get_running_loop()
        if self.generator is not self.device:
            return await loop.run_in_executor(self.generator, method, task)
        with self.device.reserve():
            return await loop.run_in_executor(self.device, self.device.run_by, deadline,
                                              method, task)

    @grpc_errors
    async def Info(self, request, context):
        self._ready()
        return self.info_message()

    @grpc_errors
    async def Score(self, request, context):
        self._ready()
        requests.check_score(request, self.info.max_images)
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
        if self.generate_batcher is None:
            task = await asyncio.to_thread(lambda: self._admitted(requests.generate_task(request)))
            text, usage = unmeter(await self._run(backend.generate, task, context))
        else:  # prepared in a worker thread, then batched on the device thread like Score
            self.generate_batcher.check_room(1, "requests")
            deadline = deadline_from(context.time_remaining())
            task = await asyncio.to_thread(self._prepared_generation, request, deadline)
            text, usage = unmeter(await self.generate_batcher.submit(task, deadline))
        return pb.GenerateResponse(request_id=request.request_id, text=text,
                                   usage=usage_message(usage))

    @grpc_errors
    async def GenerateImage(self, request, context):
        backend = self._ready()
        requests.check_prompt(request.prompt, self.info.max_images)
        requests.check_max_new_tokens(request.max_new_tokens, self.max_new_tokens)
        task = await asyncio.to_thread(
            lambda: self._admitted(requests.generate_image_task(request)))
        out, usage = unmeter(await self._run(backend.generate_image, task, context))
        image = pb.Image(data=out.png, sha256=hashlib.sha256(out.png).hexdigest())
        return pb.GenerateImageResponse(request_id=request.request_id, image=image, text=out.text,
                                        usage=usage_message(usage))


def usage_message(usage: Usage | None) -> pb.Usage | None:
    if usage is None:
        return None
    return pb.Usage(requests=usage.requests, retries=usage.retries,
                    prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
