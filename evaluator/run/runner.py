"""Run the selected questions against the model pool, committing each answer as it lands.

A bounded window of calls is in flight across all replicas. Media is read and
encoded in a thread pool only when its question enters the window, so memory
stays flat however many questions there are. Which code answers a question is
chosen by its dimension in the run's plan (`evaluator.run.plan`): dims 1-24 rank
options with Score (`default_handlers`); dims 25-27 (L3) use `evaluator.run.l3`
when the run has a CLIP server and an image-generating model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evaluator.data.dataset import LETTERS, Question
from evaluator.data.media import MediaError, read_image
from evaluator.data.video_frames import FrameCache
from evaluator.results.failures import QuestionError, error_text
from evaluator.results.store import Store
from evaluator.run import methods
from evaluator.run.client import ModelPool, percentiles_ms
from evaluator.run.presets import Preset
from protos import seedbench_pb2 as pb
from serving.answer_parser import parse_answer

if TYPE_CHECKING:
    from evaluator.run.plan import RunPlan

MESSAGE_MARGIN = 64 << 10  # room for the text, options and protobuf framing of a request


@dataclass(frozen=True)
class Answer:
    """What a handler returns: the predicted letter (None: the reply named no single option,
    "unparsed") and JSON-able evidence (option scores, or the generated text)."""

    prediction: str | None
    scores: dict | list | None = None


@dataclass
class RunContext:
    """What a handler may use: the model pool, settings and the media reader."""

    pool: ModelPool
    method: str
    preset: Preset
    deadline_s: float
    media_pool: ThreadPoolExecutor
    video_frames: FrameCache | None = None  # samples SEED-Bench-1 raw videos (dims 10-12)
    # Why no new question may be sent (e.g. the cost cap was reached), or None; asked before each.
    stop_sending: Callable[[], str | None] = lambda: None

    async def off_loop(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self.media_pool, fn, *args)

    async def images(self, q: Question) -> list[pb.Image]:
        """The question's encoded images, read in the thread pool (never on the event loop).

        Images the server could not receive (over its Info `max_message_bytes`) are this
        question's error before anything is sent.
        """
        paths = q.image_paths
        if q.video is not None:  # a raw video: its sampled frames, decoded once and cached
            if self.video_frames is None:
                raise QuestionError(f"{q.video.describe()}: this run has no frame cache")
            paths = await self.video_frames.paths(q.video)

        def read() -> list[pb.Image]:
            out = []
            for p in paths:
                im = read_image(p)
                out.append(pb.Image(data=im.data, sha256=im.sha256))
            return out
        images = await self.off_loop(read)
        limit = self.pool.info.limits.max_message_bytes if self.pool.info else 0
        total = sum(len(im.data) for im in images)
        if limit and total + len(q.question.encode()) + MESSAGE_MARGIN > limit:
            raise MediaError("data_id", f"the images total {total} bytes; the model server "
                                        f"accepts messages up to {limit} bytes")
        return images


# A handler answers one question or raises (CallFailed, QuestionError, MediaError, OSError).
Handler = Callable[[Question, RunContext], Awaitable[Answer]]


async def rank_options(q: Question, ctx: RunContext, images: list[pb.Image]) -> Answer:
    """Choose among the question's text options with the run's method and preset."""
    images = ctx.preset.select_images(q.question, images)
    if ctx.method == "generate":
        return await generated_choice(q, ctx, images)
    prompt = methods.score_prompt(q, ctx.method, ctx.preset)
    request = pb.ScoreRequest(
        request_id=q.question_id, prompt=pb.Prompt(text=prompt.text, images=images),
        options=list(prompt.options), include_end_of_turn=prompt.include_end_of_turn,
        raw_prompt=prompt.raw_prompt)
    resp = await ctx.pool.call("Score", request, ctx.deadline_s)
    if resp.unparsed:  # no option could be ranked (e.g. no letter among a remote's top tokens):
        # answered and wrong, like a generated reply naming no option; the reason is the evidence
        return Answer(prediction=None, scores={"unparsed": resp.unparsed_reason})
    if len(resp.scores) != len(prompt.options):
        raise QuestionError(f"server returned {len(resp.scores)} scores for "
                            f"{len(prompt.options)} options")
    pairs = [(s.logprob_sum, s.num_tokens) for s in resp.scores]
    return Answer(prediction=methods.pick(ctx.preset, pairs),
                  scores=[{"logprob_sum": s, "num_tokens": n} for s, n in pairs])


async def generated_choice(q: Question, ctx: RunContext, images: list[pb.Image]) -> Answer:
    """One greedy Generate call; the letter is read by the answer parser, or left unparsed
    (prediction None) with the text kept as evidence."""
    request = pb.GenerateRequest(
        request_id=q.question_id, prompt=pb.Prompt(text=methods.listed_prompt(q), images=images),
        max_new_tokens=methods.GENERATE_MAX_NEW_TOKENS, temperature=0.0,
        seed=methods.GENERATE_SEED)
    resp = await ctx.pool.call("Generate", request, ctx.deadline_s)
    parsed = parse_answer(resp.text, q.choices, LETTERS)
    return Answer(prediction=parsed.letter, scores={"text": resp.text, "parse": parsed.reason})


async def score_handler(q: Question, ctx: RunContext) -> Answer:
    """Choose among the four options (dims 1-24): Score, or Generate for the generate method."""
    return await rank_options(q, ctx, await ctx.images(q))


def default_handlers() -> dict[int, Handler]:
    """Dims 1-24: choose among the options (Score, or Generate for the generate method)."""
    return {d: score_handler for d in range(1, 25)}


@dataclass
class RunStats:
    todo: int = 0
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
    """Answer every question not yet answered under the plan's key; errors are stored,
    never raised."""
    progress = progress or Progress()
    key = plan.key
    done = store.answered_ids(key)
    runnable = [q for q in questions if plan.handler(q) is not None]
    todo = [q for q in runnable if q.question_id not in done]
    stats = RunStats(todo=len(todo))
    t0 = time.monotonic()
    c0 = time.process_time()
    progress.start(len(runnable), len(runnable) - len(todo))
    window = asyncio.Semaphore(max(1, plan.in_flight))
    store.start_writer()

    async def one(q: Question) -> None:
        try:
            ans = await plan.handler(q)(q, ctx)
        except Exception as exc:  # noqa: BLE001 - a bug in one question must not end the run
            store.put_error(key, q, error_text(exc))
            stats.errors += 1
            progress.advance(False)
        else:
            store.put_answer(key, q, ans.prediction, ans.scores)
            stats.answered += 1
            progress.advance(True)
        finally:
            window.release()

    tasks: set[asyncio.Task] = set()
    try:
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
