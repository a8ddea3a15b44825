"""What a failed question is stored as: a typed failure (see evaluator.results.failures)."""

from __future__ import annotations

from evaluator.data.media import MediaError
from evaluator.results.failures import Failure
from evaluator.run.client import CallFailed


class QuestionError(Exception):
    """A handler's per-question failure: stored as an error and retried on the next run."""


def failure_of(exc: BaseException) -> Failure:
    """What the store records for a question that failed with `exc`: status, message and,
    for a call that failed, how often it was tried."""
    if isinstance(exc, CallFailed):
        return Failure(exc.status, exc.message, exc.attempts)
    if isinstance(exc, MediaError):
        return Failure("MEDIA", f"{exc.field}: {exc.reason}")
    if isinstance(exc, QuestionError):
        return Failure("QUESTION", str(exc))
    if isinstance(exc, OSError):
        return Failure("IO", str(exc))
    return Failure("INTERNAL", f"internal error: {exc!r}")
