"""Gather concurrent calls into one device batch, computed off the event loop.

One worker thread owns the device: batches run there one after another while
the event loop keeps accepting requests. A batch closes when it holds
max_batch items or max_wait has passed since its first item arrived.

The batch function returns one entry per item, in order: a result, or an
exception that fails that item alone. Its neighbours keep their results and
nothing is ever run twice. If the function itself raises, every item of the
batch fails with that error (a failure of the whole batch, e.g. out of memory).

The queue is bounded (max_queue): a submit beyond it fails at once with
QueueFull. `submit_all` queues the items of one request together or not at
all, so a refused request leaves nothing behind to compute. An item whose
deadline (time.monotonic) passed while it waited is failed with DeadlinePassed
and never reaches `fn`: checked when its batch starts on the executor (which
other batchers' batches may hold: several share one device thread).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from collections.abc import Callable, Sequence
from typing import Any

from serving.errors import DeadlinePassed, QueueFull


class MicroBatcher:
    """Submit items one at a time; `fn` sees them in batches and returns a result or an
    exception per item."""

    def __init__(self, fn: Callable[[Sequence[Any]], list[Any]], executor: concurrent.futures.Executor,
                 max_batch: int = 8, max_wait_ms: float = 5.0, max_queue: int = 0):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._fn = fn
        self._executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.max_queue = max_queue  # 0: unbounded
        self.dropped = 0  # items whose deadline passed before they ran
        self._queue: collections.deque | None = None
        self._task: asyncio.Task | None = None
        self.batches_run = 0
        self.items_run = 0
        self.on_batch: Callable[[int], None] | None = None  # told each batch's size (metrics)

    @property
    def queue_depth(self) -> int:
        """Items waiting for a batch."""
        return len(self._queue) if self._queue is not None else 0

    async def submit(self, item: Any, deadline: float | None = None) -> Any:
        self.check_room(1, "requests")
        return await self._enqueue(item, deadline)

    async def submit_all(self, items: Sequence[Any], deadline: float | None = None,
                         unit: str = "items") -> list[Any]:
        """Queue one request's items together, or refuse them all at once (QueueFull)."""
        self.check_room(len(items), unit)
        return list(await asyncio.gather(*(self._enqueue(item, deadline) for item in items)))

    def check_room(self, n: int, unit: str = "items") -> None:
        """QueueFull unless `n` more items fit: within max_queue, or alone on an empty
        queue (so one request may hold more than max_queue items; the queue then holds
        at most max(max_queue, the largest request)). Cheap: callers check before
        preparing a request's items as well as when they submit them."""
        waiting = self.queue_depth
        if self.max_queue and waiting and waiting + n > self.max_queue:
            raise QueueFull(f"batch queue full: {waiting} {unit} waiting (max_queue "
                            f"{self.max_queue}); retry later")

    def _enqueue(self, item: Any, deadline: float | None) -> asyncio.Future:
        if self._task is None:
            self._queue = collections.deque()
            self._arrived = asyncio.Event()
            self._full = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        fut = asyncio.get_running_loop().create_future()
        fut.deadline = deadline
        self._queue.append((item, fut))
        self._arrived.set()
        if len(self._queue) >= self.max_batch:
            self._full.set()
        return fut

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _collect(self) -> list[tuple[Any, asyncio.Future]]:
        """Wait for a first item, then until the batch is full or max_wait has passed.

        One timer per batch, not per item: at thousands of calls a second the
        per-item cost of the event loop is what limits a cheap backend.
        """
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        if len(self._queue) < self.max_batch and self.max_wait_s > 0:
            self._full.clear()
            try:
                await asyncio.wait_for(self._full.wait(), self.max_wait_s)
            except TimeoutError:
                pass
        n = min(self.max_batch, len(self._queue))
        batch = [self._queue.popleft() for _ in range(n)]
        if len(self._queue) >= self.max_batch:
            self._full.set()
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            live = [(item, fut) for item, fut in await self._collect() if not fut.cancelled()]
            if not live:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self._run, live)
            except Exception as exc:  # the whole batch failed: so does every item in it
                for _, fut in live:
                    settle(fut, exc=exc)
                continue
            for (_, fut), res in zip(live, results, strict=True):
                if isinstance(res, Exception):
                    settle(fut, exc=res)
                else:
                    settle(fut, result=res)


    def _run(self, batch: list[tuple[Any, asyncio.Future]]) -> list[Any]:
        """On the executor: `fn` over the items still wanted. An item whose deadline passed
        while the batch waited for the executor (which another batcher's batch may hold)
        is dropped here, its result DeadlinePassed."""
        now = time.monotonic()
        results: list[Any] = [None] * len(batch)
        run = []
        for k, (_, fut) in enumerate(batch):
            if fut.deadline is not None and now >= fut.deadline:
                self.dropped += 1
                results[k] = DeadlinePassed(
                    "the client's deadline passed while the request waited; not run")
            else:
                run.append(k)
        if not run:
            return results
        if self.on_batch is not None:
            self.on_batch(len(run))
        out = self._fn([batch[k][0] for k in run])
        if len(out) != len(run):
            raise RuntimeError(f"backend returned {len(out)} results for {len(run)} items")
        for k, r in zip(run, out, strict=True):
            results[k] = r
        self.batches_run += 1
        self.items_run += len(run)
        return results


def settle(fut: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
