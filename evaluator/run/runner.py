"""Run the selected questions against the model pool, committing each answer as it lands.

A bounded window of calls is in flight across all replicas. Media is read and
encoded in a thread pool only when its question enters the window, so memory
stays flat however many questions there are. Which handler answers a question
is chosen by its dimension in the run's plan (`evaluator.run.plan`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from evaluator.data.dataset import Question
from evaluator.results.store import Store
from evaluator.run import asked
from evaluator.run.client import percentiles_ms
from evaluator.run.errors import failure_of
from evaluator.run.handlers import RunContext
from evaluator.run.plan import RunPlan


@dataclass
class RunStats:
    todo: int = 0
    stale: int = 0  # asked again: the stored answer was to another version of the question
    keying_s: float = 0.0  # deciding what is answered already (content keys of stored questions)
    answered: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time while answering: the client's own cost
    endpoints: list[dict] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)  # over all replicas' answered calls
    stopped: str | None = None  # why the run stopped sending before its last question


class Progress:
    """Interface the runner reports to; the CLI plugs a rich bar in, tests nothing."""

    def start(self, total: int, done: int) -> None: ...
    def advance(self, ok: bool) -> None: ...
    def stop(self) -> None: ...


async def run_questions(questions: list[Question], store: Store, plan: RunPlan, ctx: RunContext,
                        progress: Progress | None = None) -> RunStats:
    """Answer every question without an answer under the plan's key for the question as it
    is now (its content key, evaluator.run.asked); errors are stored, never raised."""
    progress = progress or Progress()
    key = plan.key
    t0 = time.monotonic()
    c0 = time.process_time()
    runnable = [q for q in questions if plan.handler(q) is not None]
    store.start_writer()  # media threads record digests while keys are computed

    async def one(q: Question) -> None:
        try:
            ans = await plan.handler(q)(q, ctx)
        except Exception as exc:  # noqa: BLE001 - a bug in one question must not end the run
            store.put_error(key, q, failure_of(exc), await asked.asked_key(q, ctx))
            stats.errors += 1
            progress.advance(False)
        else:
            store.put_answer(key, q, ans.prediction, ans.scores, await asked.asked_key(q, ctx))
            stats.answered += 1
            progress.advance(True)
        finally:
            window.release()

    tasks: set[asyncio.Task] = set()
    try:
        stored = store.stored_keys(key)
        current = await asked.current_keys((q for q in runnable if q.question_id in stored), ctx)
        store.set_content_keys(current)
        todo = [q for q in runnable
                if stored.get(q.question_id, {}).get(current.get(q.question_id)) != "ok"]
        stats = RunStats(todo=len(todo), stale=sum(
            1 for q in todo if "ok" in stored.get(q.question_id, {}).values()),
            keying_s=time.monotonic() - t0)
        progress.start(len(runnable), len(runnable) - len(todo))
        window = asyncio.Semaphore(max(1, plan.in_flight))
        for q in todo:
            await window.acquire()
            stopped = ctx.stop_sending()
            if stopped:  # those in flight are still awaited and committed below
                window.release()
                stats.stopped = stopped
                break
            t = asyncio.create_task(one(q))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        store.stop_writer()  # every answer committed before anyone reads the store
        progress.stop()
    stats.elapsed_s = time.monotonic() - t0
    stats.cpu_s = time.process_time() - c0
    stats.endpoints = [ep.stats() for ep in ctx.pool.endpoints]
    stats.latency_ms = percentiles_ms([x for ep in ctx.pool.endpoints for x in ep.latencies_s])
    return stats
