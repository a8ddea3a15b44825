"""MicroBatcher: gathers concurrent calls, keeps results in place, isolates failures."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from serving.batching import MicroBatcher
from tests.waiting import wait_until_async


def run(coro):
    return asyncio.run(coro)


def test_concurrent_items_share_batches_and_results_stay_in_place():
    seen = []
    threads = set()

    def fn(items):
        seen.append(len(items))
        threads.add(threading.current_thread().name)
        return [x * 10 for x in items]

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dev") as ex:
            b = MicroBatcher(fn, ex, max_batch=4, max_wait_ms=50)
            out = await asyncio.gather(*(b.submit(i) for i in range(10)))
            await b.close()
            return out

    assert run(main()) == [i * 10 for i in range(10)]
    assert max(seen) == 4 and sum(seen) == 10 and len(seen) <= 4
    assert all(name.startswith("dev") for name in threads)  # off the event loop


def test_one_bad_item_fails_alone():
    def fn(items):  # the batch contract: a result or an exception per item
        return [ValueError("bad item") if x == "bad" else x.upper() for x in items]

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(fn, ex, max_batch=8, max_wait_ms=50)
            res = await asyncio.gather(*(b.submit(x) for x in ["a", "bad", "c"]),
                                       return_exceptions=True)
            await b.close()
            return res

    a, bad, c = run(main())
    assert (a, c) == ("A", "C")
    assert isinstance(bad, ValueError)


def test_failing_item_never_makes_its_batch_mates_run_twice():
    calls: dict[str, int] = {}

    def fn(items):
        for x in items:
            calls[x] = calls.get(x, 0) + 1
        return [ValueError(f"{x} is bad") if x.startswith("bad") else x.upper() for x in items]

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(fn, ex, max_batch=8, max_wait_ms=50)
            items = ["a", "bad1", "c", "d", "bad2", "f"]
            res = await asyncio.gather(*(b.submit(x) for x in items), return_exceptions=True)
            await b.close()
            return items, res, b.batches_run

    items, res, batches = run(main())
    assert calls == {x: 1 for x in items}  # every item computed exactly once
    assert batches == 1
    assert [r for r in res if not isinstance(r, Exception)] == ["A", "C", "D", "F"]
    assert [str(r) for r in res if isinstance(r, Exception)] == ["bad1 is bad", "bad2 is bad"]


def test_a_raising_batch_fails_every_item_once():
    calls = []

    def fn(items):
        calls.append(list(items))
        raise MemoryError("device out of memory")

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(fn, ex, max_batch=4, max_wait_ms=50)
            res = await asyncio.gather(*(b.submit(x) for x in "abc"), return_exceptions=True)
            await b.close()
            return res

    res = run(main())
    assert all(isinstance(r, MemoryError) for r in res)
    assert calls == [["a", "b", "c"]]  # one call, no item re-run on its own


def test_event_loop_stays_responsive_during_compute():
    started, gate = threading.Event(), threading.Event()
    loop_thread = threading.current_thread()
    ran_on: list = []

    def fn(items):
        ran_on.append(threading.current_thread())
        started.set()
        gate.wait(10)
        return items

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(fn, ex, max_batch=2, max_wait_ms=1)
            task = asyncio.ensure_future(b.submit(1))
            await wait_until_async(started.is_set, what="the batch started")
            ticks = 0
            for _ in range(5):  # the loop keeps running while the batch computes
                await asyncio.sleep(0)
                ticks += 1
            busy = not task.done()
            gate.set()
            res = await task
            await b.close()
            return ticks, busy, res

    assert run(main()) == (5, True, 1)
    assert ran_on != [loop_thread] and len(ran_on) == 1


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError):
        MicroBatcher(lambda x: x, None, max_batch=0)


def test_submit_all_queues_a_request_whole_or_refuses_it_whole():
    """A request's items enter together, or none do (nothing is computed for a refused one);
    one request alone on an empty queue always fits, whatever max_queue says."""
    from serving.errors import QueueFull

    started, gate = threading.Event(), threading.Event()
    ran: list = []

    def fn(items):
        started.set()
        gate.wait(10)
        ran.extend(items)
        return items

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(fn, ex, max_batch=1, max_wait_ms=0, max_queue=4)
            first = asyncio.ensure_future(b.submit_all(["a0", "a1", "a2", "a3", "a4", "a5"]))
            # a0 runs (held by the gate), a1..a5 wait: 5 > max_queue
            await wait_until_async(lambda: started.is_set() and b.queue_depth == 5,
                                   what="a0 running, five waiting")
            with pytest.raises(QueueFull, match=r"5 images waiting \(max_queue 4\)"):
                await b.submit_all(["b0"], unit="images")
            gate.set()
            out = await first
            second = await b.submit_all(["c0", "c1", "c2"])  # room again
            await b.close()
            return out, second

    out, second = run(main())
    assert out == ["a0", "a1", "a2", "a3", "a4", "a5"] and second == ["c0", "c1", "c2"]
    assert "b0" not in ran


def test_items_whose_deadline_passed_while_waiting_are_dropped_unrun():
    import time

    from serving.errors import DeadlinePassed

    started, gate = threading.Event(), threading.Event()
    ran: list = []

    def fn(items):
        started.set()
        gate.wait(10)
        ran.extend(items)
        return items

    async def main():
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            b = MicroBatcher(fn, ex, max_batch=1, max_wait_ms=0)
            busy = asyncio.ensure_future(b.submit("busy"))
            await wait_until_async(started.is_set, what="'busy' holds the device")
            deadline = time.monotonic() + 0.05
            late = asyncio.ensure_future(b.submit_all(["late0", "late1"], deadline))
            # the deadline passes while "busy" holds the device, with both late items queued
            await wait_until_async(lambda: b.queue_depth == 2 and time.monotonic() > deadline,
                                   what="the late items' deadline passed while they waited")
            gate.set()
            with pytest.raises(DeadlinePassed):
                await late  # raised by the first item dropped; the second may still be queued
            await busy
            # settled (dropped, or wrongly run) before the batcher closes
            await wait_until_async(lambda: b.dropped == 2 or len(ran) > 1,
                                   what="both late items dropped")
            await b.close()
            return b.dropped

    assert run(main()) == 2
    assert ran == ["busy"]
