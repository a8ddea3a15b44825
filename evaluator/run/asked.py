"""Which stored answers still hold: each question's content key, before and after asking.

Before a run, the current key of every question that already has a row under
the run key is computed from remembered media digests (evaluator.data.digests:
a stat per file, a read only for files that changed) and the frame cache's
records of raw videos; a question is skipped only when an answer is stored
under that key. Questions never asked cost nothing here: their key is computed
after asking, from the sha256 of the images as they were sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from evaluator.data.dataset import Question
from evaluator.data.media import MediaError
from evaluator.results.content_key import content_key
from evaluator.run.errors import QuestionError
from evaluator.run.handlers import RunContext

# What can keep a question's media from being hashed: the question is then asked again,
# and asking reports the problem as its error.
_UNKEYABLE = (OSError, MediaError, QuestionError)


def key_of(q: Question, ctx: RunContext, media_sha256: list[str]) -> str:
    return content_key(q, ctx.method, ctx.preset, media_sha256)


async def current_keys(questions: Iterable[Question], ctx: RunContext) -> dict[str, str | None]:
    """question_id -> the key of the question as it is now (None: its media cannot be read)."""
    questions = list(questions)
    plain = [q for q in questions if q.video is None]

    def image_keys() -> dict[str, str | None]:  # one trip to a thread for all image questions
        out: dict[str, str | None] = {}
        for q in plain:
            try:
                out[q.question_id] = key_of(q, ctx, [ctx.digests.sha256(s) for s in q.images])
            except _UNKEYABLE:
                out[q.question_id] = None
        return out

    keys = await ctx.off_loop(image_keys) if plain else {}
    for q in questions:
        if q.video is not None:
            try:
                keys[q.question_id] = key_of(q, ctx, await ctx.media_sha256(q))
            except _UNKEYABLE:
                keys[q.question_id] = None
    return keys


async def asked_key(q: Question, ctx: RunContext) -> str:
    """The key of what was just asked: from the images as sent, or (a handler that sent
    none of them, or failed before) from the media as it is; "" when it cannot be read."""
    sent = ctx.sent.pop(q.question_id, None)
    if sent is None:
        try:
            sent = await ctx.media_sha256(q)
        except _UNKEYABLE:
            return ""
    return key_of(q, ctx, sent)
