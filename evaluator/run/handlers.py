"""How one question is answered: the handler contract and the Score/Generate handlers.

A handler is an async `(Question, RunContext) -> Answer`; the plan
(`evaluator.run.plan`) picks one per dimension: every dimension a benchmark
answers by choosing among its options ranks them with Score, or Generate for the
generate method (`default_handlers`); SEED-Bench-2's dims 25-27 (L3) use
`evaluator.run.l3`. Handlers raise on failure; the runner stores the error and
carries on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from evaluator.data.benchmarks import Benchmark
from evaluator.data.dataset import LETTERS, Question
from evaluator.data.digests import FileDigests
from evaluator.data.image_source import ImageSource
from evaluator.data.media import MediaError
from evaluator.data.video_frames import FrameCache
from evaluator.run import methods
from evaluator.run.client import ModelPool
from evaluator.run.errors import QuestionError
from evaluator.run.presets import Preset
from protos import seedbench_pb2 as pb
from serving.answer_parser import parse_answer

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
    # Media digests by file stat; the run passes the store-backed one so reruns read nothing.
    digests: FileDigests = field(default_factory=FileDigests)
    # question_id -> sha256 of each image or frame `images` read for it, in order: what was
    # sent, taken by the runner for the answer's content key (evaluator.run.asked).
    sent: dict[str, list[str]] = field(default_factory=dict)

    async def off_loop(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self.media_pool, fn, *args)

    async def media_sources(self, q: Question) -> list[ImageSource]:
        """The question's images: its own (files, or a snapshot's embedded images), or its raw
        video's sampled frames (decoded once and cached)."""
        if q.video is None:
            return list(q.images)
        if self.video_frames is None:
            raise QuestionError(f"{q.video.describe()}: this run has no frame cache")
        return await self.video_frames.paths(q.video)

    async def images(self, q: Question) -> list[pb.Image]:
        """The question's encoded images (files or a snapshot's embedded bytes, both through
        `read_image`), read in the thread pool (never on the event loop).

        Images the server could not receive (over its Info `max_message_bytes`) are this
        question's error before anything is sent.
        """
        sources = await self.media_sources(q)

        def read() -> list[pb.Image]:
            return [pb.Image(data=im.data, sha256=im.sha256)
                    for im in map(self.digests.read, sources)]
        images = await self.off_loop(read)
        self.sent[q.question_id] = [im.sha256 for im in images]
        limit = self.pool.info.limits.max_message_bytes if self.pool.info else 0
        total = sum(len(im.data) for im in images)
        if limit and total + len(q.question.encode()) + MESSAGE_MARGIN > limit:
            raise MediaError("data_id", f"the images total {total} bytes; the model server "
                                        f"accepts messages up to {limit} bytes")
        return images

    async def media_sha256(self, q: Question) -> list[str]:
        """sha256 of each of the question's images or frames without sending them: remembered
        digests where the files are unchanged, else read (raises like `images`)."""
        sources = await self.media_sources(q)
        return await self.off_loop(lambda: [self.digests.sha256(s) for s in sources])


# A handler answers one question or raises (CallFailed, QuestionError, MediaError, OSError).
Handler = Callable[[Question, RunContext], Awaitable[Answer]]


async def rank_options(q: Question, ctx: RunContext, images: list[pb.Image]) -> Answer:
    """Choose among the question's text options with the run's method and preset."""
    if ctx.method == "generate":
        return await generated_choice(q, ctx, ctx.preset.select_images(q.question, images))
    request = methods.score_request(q, ctx.method, ctx.preset, images)
    resp = await ctx.pool.call("Score", request, ctx.deadline_s)
    if resp.unparsed:  # no option could be ranked (e.g. no letter among a remote's top tokens):
        # answered and wrong, like a generated reply naming no option; the reason is the evidence
        return Answer(prediction=None, scores={"unparsed": resp.unparsed_reason})
    if len(resp.scores) != len(request.options):
        raise QuestionError(f"server returned {len(resp.scores)} scores for "
                            f"{len(request.options)} options")
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
    """Choose among the four options: Score, or Generate for the generate method."""
    return await rank_options(q, ctx, await ctx.images(q))


def default_handlers(bench: Benchmark) -> dict[int, Handler]:
    """Every dimension of the benchmark not answered by image generation: choose among the
    options (Score, or Generate for the generate method)."""
    return {d: score_handler for d in bench.dimensions if d not in bench.generation_dims}
